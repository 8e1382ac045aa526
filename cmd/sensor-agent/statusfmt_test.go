package main

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
)

// TestPrintStatus pins what `status` prints for a degraded agent: every
// part of the report, units from value names, ages, the problems.
func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	rep := statusReport{Version: "v1.4.0", PID: 812, Started: now.Add(-26*time.Hour - 3*time.Minute), Socket: "/run/sensor-agent/agent.sock",
		State: "degraded", Problems: []string{"sensor door failing (7 consecutive errors): door: gpio GPIO17: read: busy"},
		Snapshot: agent.Snapshot{
			Device: "pi-7", Config: "/etc/sensor-agent/config.yaml", ClockSynced: true,
			Certificate: &agent.Certificate{Subject: "pi-7", NotAfter: now.AddDate(0, 0, 12), DaysLeft: 12},
			Route:       agent.Route{Host: "abc-ats.iot.eu-west-1.amazonaws.com", Port: 8443, Fallback: true, Proxy: "http://proxy:3128", ProxySource: "HTTPS_PROXY"},
			Publish:     agent.PublishState{LastSuccess: now.Add(-4 * time.Second), Messages: 120, Readings: 3400, Taken: 3412, Errors: 2},
			Sensors: []agent.SensorSnapshot{
				{Name: "greenhouse", Driver: "bme280", Interval: "30s", Healthy: true, LastReading: now.Add(-3 * time.Second),
					Values: map[string]float64{"temperature_c": 23.35, "humidity_pct": 63.4, "pressure_hpa": 1016.35}},
				{Name: "door", Driver: "gpio", Interval: "1s", ConsecutiveErrors: 7, LastError: "door: gpio GPIO17: read: busy",
					LastReading: now.Add(-25 * time.Hour), Values: map[string]float64{"level": 1}},
				{Name: "rain", Driver: "gpio_counter", Interval: "1m0s", Healthy: true, Done: false,
					Values: map[string]float64{"count": 3, "rate_per_s": 0.05, "rain_mm": 0.8382}, LastReading: now.Add(-time.Minute)},
			},
			Spool: agent.SpoolSnapshot{Dir: "/var/lib/sensor-agent/spool", Pending: 12, InMemory: 2, Oldest: now.Add(-90 * time.Second),
				DiskBytes: 3 << 20, Dropped: map[string]uint64{"spool full": 1233, "memory full": 21},
				DeadLettered: 1, DeadLetterFile: "/var/lib/sensor-agent/spool/dead-letter.jsonl"},
		}}
	var b bytes.Buffer
	printStatus(&b, rep, now)
	want := `sensor-agent v1.4.0 (pid 812): degraded, up 1d2h3m0s
  device:        pi-7 (config /etc/sensor-agent/config.yaml)
  clock:         synchronised
  certificate:   pi-7, 12 days left: renew it (until 2026-12-16)
  route:         abc-ats.iot.eu-west-1.amazonaws.com:8443, on the fallback port: the configured port is unreachable, via proxy http://proxy:3128 (HTTPS_PROXY)
  publish:       ok, last success 11:59:56Z (4s ago); 3412 readings taken, 3400 published in 120 messages, 2 errors
  remote config: off (no shadow)

SENSOR      DRIVER        INTERVAL  HEALTH   ERRORS  LAST READING                         VALUES
greenhouse  bme280        30s       ok       0       11:59:57Z (3s ago)                   humidity 63.4 %, pressure 1016.35 hPa, temperature 23.35 °C
door        gpio          1s        FAILING  7       2026-12-03 11:00:00Z (1d1h0m0s ago)  level 1
rain        gpio_counter  1m0s      ok       0       11:59:00Z (1m0s ago)                 count 3, rain 0.8382 mm, rate 0.05 /s
  door: door: gpio GPIO17: read: busy

spool /var/lib/sensor-agent/spool:
  pending:       12 readings (2 only in memory), oldest 11:58:30Z (1m30s ago)
  disk:          3.0 MiB
  dropped:       21 memory full, 1233 spool full
  dead letters:  1 readings since start (/var/lib/sensor-agent/spool/dead-letter.jsonl)

problems:
  - sensor door failing (7 consecutive errors): door: gpio GPIO17: read: busy
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestServeSocketPath: the runtime directory first, state_dir next, and a
// clear error when no path fits a socket address.
func TestServeSocketPath(t *testing.T) {
	long := "/" + strings.Repeat("d", 100)
	env := func(rd string) func(string) string {
		return func(k string) string {
			if k == "RUNTIME_DIRECTORY" {
				return rd
			}
			return ""
		}
	}
	for _, tc := range []struct {
		runtime, state, want string
		err                  bool
	}{
		{"/run/sensor-agent", "/var/lib/sensor-agent", "/run/sensor-agent/agent.sock", false},
		{"/run/sensor-agent:/run/other", "/var/lib/sensor-agent", "/run/sensor-agent/agent.sock", false},
		{"", "/var/lib/sensor-agent", "/var/lib/sensor-agent/agent.sock", false},
		{long, "/var/lib/sensor-agent", "/var/lib/sensor-agent/agent.sock", false},
		{"", long, "", true},
		{long, long, "", true},
	} {
		got, err := serveSocketPath(env(tc.runtime), tc.state)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("RUNTIME_DIRECTORY=%q state_dir %q: %q, %v; want %q", tc.runtime, tc.state, got, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), filepath.Join(long, socketName)) {
			t.Errorf("error does not name the path: %v", err)
		}
	}
	if !errors.Is(notRunning{errors.New("x")}, errNotRunning) {
		t.Error("notRunning is not errNotRunning")
	}
}

func TestRemoteLines(t *testing.T) {
	tests := []struct {
		name string
		r    *agent.RemoteConfig
		want string
	}{
		{"off", nil, "remote config: off (no shadow)\n"},
		{"none yet", &agent.RemoteConfig{}, "remote config: none (the shadow has no desired state)\n"},
		{"applied", &agent.RemoteConfig{Version: 7, Applied: map[string]any{"log_level": "debug"}},
			"remote config: shadow version 7: {\"log_level\":\"debug\"}\n"},
		{"refused", &agent.RemoteConfig{Version: 7, Applied: map[string]any{"log_level": "debug"}, Error: "desired.endpoint: not settable remotely"},
			"remote config: shadow version 7: {\"log_level\":\"debug\"}\nremote refused: desired.endpoint: not settable remotely\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			remoteLines(func(k, format string, a ...any) { fmt.Fprintf(&b, k+": "+format+"\n", a...) }, tt.r)
			if b.String() != tt.want {
				t.Errorf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}
