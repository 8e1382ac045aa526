package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
)

// TestSupervisorStopsPinging runs the supervisor against a fake systemd
// socket and a fake pipeline: WATCHDOG=1 arrives while the counters move,
// stops once they freeze, and resumes when they move again.
func TestSupervisorStopsPinging(t *testing.T) {
	sock := listenNotify(t)
	sd, err := newNotifier(func(string) string { return sock.path })
	if err != nil {
		t.Fatal(err)
	}
	var taken, published atomic.Int64
	var moving atomic.Bool
	moving.Store(true)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { // the pipeline
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if moving.Load() {
					taken.Add(1)
					published.Add(1)
				}
			}
		}
	})
	sup := &supervisor{
		sd: sd, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		snapshot: func() agent.Progress {
			return agent.Progress{Taken: taken.Load(), Published: published.Load()}
		},
		now:         time.Now,
		statusEvery: 50 * time.Millisecond, watchdogEvery: 20 * time.Millisecond,
		limits: agent.ProgressLimits{Sampling: 150 * time.Millisecond, SamplingFailing: time.Second,
			Sending: time.Second, Retrying: time.Second},
	}
	wg.Go(func() { sup.run(ctx) })

	deadline := time.After(20 * time.Second)
	waitMsg := func(what string, match func(string) bool) {
		t.Helper()
		for {
			select {
			case m := <-sock.msgs:
				if match(m) {
					return
				}
			case <-deadline:
				t.Fatalf("no %s from the supervisor", what)
			}
		}
	}
	isPing := func(m string) bool { return m == sdWatchdog }
	for range 5 {
		waitMsg("WATCHDOG=1 while progressing", isPing)
	}
	moving.Store(false)
	waitMsg("STALLED status after the pipeline froze", func(m string) bool {
		return strings.HasPrefix(m, "STATUS=STALLED, sampling stalled")
	})
	// From now on: no ping for several watchdog periods.
	quiet := time.After(10 * sup.watchdogEvery)
	for done := false; !done; {
		select {
		case m := <-sock.msgs:
			if isPing(m) {
				t.Fatalf("WATCHDOG=1 sent while the pipeline is stalled")
			}
		case <-quiet:
			done = true
		}
	}
	moving.Store(true)
	waitMsg("WATCHDOG=1 after the pipeline moved again", isPing)
}
