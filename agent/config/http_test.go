package config

import (
	"strings"
	"testing"
)

func TestConfigHTTP(t *testing.T) {
	c, err := Parse("c.yaml", []byte(minimal), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "" {
		t.Errorf("http.listen defaults to %q, want off", c.HTTP.Listen)
	}
	if c.HTTP.History.D() != DefaultHistory || c.HTTP.HistoryMaxBytes != DefaultHistoryMaxBytes {
		t.Errorf("http.history defaults to %s in %d bytes, want 1h in 2MiB", c.HTTP.History, c.HTTP.HistoryMaxBytes)
	}
	for _, tc := range []struct {
		listen   string
		loopback bool
	}{
		{"127.0.0.1:9102", true},
		{"localhost:9102", true},
		{"[::1]:9102", true},
		{"127.0.0.1:0", true},
		{"0.0.0.0:9102", false},
		{":9102", false},
		{"192.168.1.20:9102", false},
		{"pi.local:9102", false},
	} {
		c, err := Parse("c.yaml", []byte(minimal+"http:\n  listen: \""+tc.listen+"\"\n"), noEnv)
		if err != nil {
			t.Errorf("listen %q: %v", tc.listen, err)
			continue
		}
		if c.HTTP.Listen != tc.listen || c.HTTP.Loopback() != tc.loopback {
			t.Errorf("listen %q: got %q, loopback %v, want %v", tc.listen, c.HTTP.Listen, c.HTTP.Loopback(), tc.loopback)
		}
	}
	for _, tc := range []struct{ src, want string }{
		{"http:\n  listen: 9102\n", `c.yaml:13: http.listen: "9102": want host:port`},
		{"http:\n  listen: \"127.0.0.1:http\"\n", `http.listen: "127.0.0.1:http": the port "http" is not a number`},
		{"http:\n  listen: \"127.0.0.1:70000\"\n", `the port "70000"`},
		{"http:\n  listen: \"127.0.0.1:9102\"\n  path: /m\n", `c.yaml:14: http.path: unknown key; known keys here: history, history_max_bytes, listen`},
		{"http:\n  listen: \"127.0.0.1:9102\"\n  history: 10s\n", `http.history: 10s: give from 1m to 24h`},
		{"http:\n  listen: \"127.0.0.1:9102\"\n  history: 48h\n", `http.history: 48h0m0s: give from 1m to 24h`},
		{"http:\n  listen: \"127.0.0.1:9102\"\n  history_max_bytes: 1GiB\n", `http.history_max_bytes: 1073741824 bytes: give from 64KiB to 64MiB`},
		{"http: on\n", `http: want a mapping`},
	} {
		_, err := Parse("c.yaml", []byte(minimal+tc.src), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.src, err, tc.want)
		}
	}
}
