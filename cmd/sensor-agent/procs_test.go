package main

import (
	"runtime"
	"testing"
)

func TestLimitProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	for _, c := range []struct {
		cmd, env string
		want     int
	}{
		{"run", "", 1},
		{"run", "4", 3},    // the user's GOMAXPROCS: left alone
		{"emulate", "", 3}, // only the agent itself
		{"publish", "", 3},
	} {
		runtime.GOMAXPROCS(3)
		limitProcs(c.cmd, func(k string) string {
			if k == "GOMAXPROCS" {
				return c.env
			}
			return ""
		})
		if got := runtime.GOMAXPROCS(0); got != c.want {
			t.Errorf("%s with GOMAXPROCS=%q: %d procs, want %d", c.cmd, c.env, got, c.want)
		}
	}
}
