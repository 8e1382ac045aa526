package shadow

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// fakeSource is an agent whose snapshot the test sets, with the real
// publisher client against the emulator.
type fakeSource struct {
	*publisher.Client
	mu    sync.Mutex
	snap  agent.Snapshot
	calls int // shadow requests tried, answered or not
}

func (f *fakeSource) Shadow(ctx context.Context, method, thing, name string, body []byte) (publisher.ShadowReply, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return f.Client.Shadow(ctx, method, thing, name, body)
}

func (f *fakeSource) tried() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeSource) Snapshot() agent.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeSource) PublishMetrics() agent.PublishMetrics {
	return agent.PublishMetrics{ErrorsByKind: map[string]int64{"retry": 0}}
}

func startEmu(t testing.TB) (*iotemu.Server, *publisher.Client) {
	t.Helper()
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := iotemu.Start(iotemu.Options{PKI: pki, PlainAddr: iotemu.Off})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	_, port, _ := strings.Cut(srv.ALPNAddr(), ":")
	p, _ := strconv.Atoi(port)
	c, err := publisher.New(publisher.Config{Host: "localhost", Port: p, ALPN: "on",
		CertFile: pki.Path(iotemu.DeviceCertFile), KeyFile: pki.Path(iotemu.DeviceKeyFile),
		CAFile: pki.Path(iotemu.CAFile), Timeout: 5 * time.Second, QoS: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return srv, c
}

func reported(t *testing.T, srv *iotemu.Server) map[string]any {
	t.Helper()
	doc, ok := srv.Shadow("pi-1", "sensor-agent")
	if !ok {
		t.Fatal("no shadow")
	}
	var d shadowDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	return d.State.Reported
}

func TestLoop(t *testing.T) {
	srv, client := startEmu(t)
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	src := &fakeSource{Client: client, snap: agent.Snapshot{ClockSynced: true,
		Sensors: []agent.SensorSnapshot{{Name: "air", Driver: "sim", Interval: "1s", Healthy: true, LastReading: t0,
			Values: map[string]float64{"temperature_c": 21.5}}}}}
	var facts Facts
	var got []map[string]any
	l := &Loop{Thing: "pi-1", Name: "sensor-agent", ReportEvery: 5 * time.Minute, PollEvery: 5 * time.Minute,
		CheckEvery: 10 * time.Second, Log: slog.New(slog.DiscardHandler),
		Source: func() Source { return src }, Facts: func() Facts { return facts },
		Desired: func(d map[string]any, version int64) {
			got = append(got, d)
			facts.Remote = agent.RemoteConfig{Version: version, Applied: d}
		}}
	ctx := context.Background()
	requests := func() int { return srv.ShadowRequests() }

	// First step: GET (404: no shadow), then the whole report.
	l.step(ctx, t0)
	if n := requests(); n != 2 {
		t.Fatalf("first step: %d shadow requests, want a GET and a POST", n)
	}
	r := reported(t, srv)
	if air := r["sensors"].(map[string]any)["air"].(map[string]any); air["healthy"] != true || air["driver"] != "sim" {
		t.Errorf("reported air: %v", air)
	}
	// Nothing changed, nothing due: no request.
	l.step(ctx, t0.Add(10*time.Second))
	if n := requests(); n != 2 {
		t.Errorf("idle step: %d requests in all, want still 2", n)
	}
	// The sensor fails: reported at once, only what changed.
	src.mu.Lock()
	src.snap.Sensors[0].Healthy, src.snap.Sensors[0].ConsecutiveErrors, src.snap.Sensors[0].LastError = false, 3, "bus stuck"
	src.mu.Unlock()
	l.step(ctx, t0.Add(20*time.Second))
	if n := requests(); n != 3 {
		t.Fatalf("after the failure: %d requests, want one more POST", n)
	}
	air := reported(t, srv)["sensors"].(map[string]any)["air"].(map[string]any)
	if air["healthy"] != false || air["error"] != "bus stuck" || air["consecutive_errors"] != 3.0 {
		t.Errorf("reported air after failure: %v", air)
	}
	// The operator sets desired state: handed over at the next poll and
	// reported back at once.
	if _, err := srv.UpdateShadow("pi-1", "sensor-agent", []byte(`{"state":{"desired":{"sensors":{"air":{"interval":"5s"}}}}}`)); err != nil {
		t.Fatal(err)
	}
	l.step(ctx, t0.Add(5*time.Minute+30*time.Second))
	if len(got) != 1 || got[0]["sensors"].(map[string]any)["air"].(map[string]any)["interval"] != "5s" {
		t.Fatalf("desired handed over: %v", got)
	}
	remote := reported(t, srv)["remote"].(map[string]any)
	if remote["applied_version"].(float64) < 1 || remote["applied"] == nil {
		t.Errorf("reported remote: %v", remote)
	}
	// The same desired state at the next poll is not handed over again.
	l.step(ctx, t0.Add(11*time.Minute))
	if len(got) != 1 {
		t.Errorf("desired handed over %d times, want once", len(got))
	}
	// Endpoint down: the GET fails, the loop backs off and goes on.
	if err := srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	before := requests()
	l.step(ctx, t0.Add(17*time.Minute))
	if !l.failing || l.pollDue.Sub(t0.Add(17*time.Minute)) != 10*time.Second {
		t.Errorf("after a failed GET: failing %v, next poll in %s, want 10s", l.failing, l.pollDue.Sub(t0.Add(17*time.Minute)))
	}
	// Health changes while it is down: the report fails, and is not tried
	// again at every check but after a growing wait.
	src.mu.Lock()
	src.snap.Sensors[0].Healthy, src.snap.Sensors[0].LastError = true, ""
	src.mu.Unlock()
	l.pollDue = t0.Add(time.Hour) // only the report is tried here
	l.step(ctx, t0.Add(17*time.Minute+2*time.Second))
	if want := t0.Add(17*time.Minute + 12*time.Second); !l.retryAt.Equal(want) {
		t.Errorf("after a failed report: retry at %s, want %s", l.retryAt, want)
	}
	n := src.tried()
	l.step(ctx, t0.Add(17*time.Minute+5*time.Second))
	if src.tried() != n {
		t.Error("a failed report was tried again before its wait")
	}
	if err := srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	l.pollDue = time.Time{}
	l.step(ctx, t0.Add(17*time.Minute+20*time.Second))
	if l.failing || requests() <= before {
		t.Errorf("after the endpoint came back: failing %v, requests %d (were %d)", l.failing, requests(), before)
	}
	if air := reported(t, srv)["sensors"].(map[string]any)["air"].(map[string]any); air["healthy"] != true {
		t.Errorf("the recovery was not reported once the endpoint came back: %v", air)
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur string
		want      string
	}{
		{"same", `{"a":1,"b":{"c":"x"}}`, `{"a":1,"b":{"c":"x"}}`, `{}`},
		{"changed leaf", `{"a":1,"b":{"c":"x","d":2}}`, `{"a":1,"b":{"c":"y","d":2}}`, `{"b":{"c":"y"}}`},
		{"key gone", `{"a":1,"b":2}`, `{"a":1}`, `{"b":null}`},
		{"new object", `{"a":1}`, `{"a":1,"s":{"x":{"h":true}}}`, `{"s":{"x":{"h":true}}}`},
		{"null on an absent key", `{}`, `{"e":null}`, `{}`},
		{"null clears", `{"e":"broken"}`, `{"e":null}`, `{"e":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prev, cur map[string]any
			_ = json.Unmarshal([]byte(tt.prev), &prev)
			_ = json.Unmarshal([]byte(tt.cur), &cur)
			b, _ := json.Marshal(Diff(prev, cur))
			if string(b) != tt.want {
				t.Errorf("Diff = %s, want %s", b, tt.want)
			}
		})
	}
}

// TestDocumentFits: however many sensors, a report stays within the
// share of AWS's 8 KB state limit it may take.
func TestDocumentFits(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		sensors    int
		wantValues bool
		wantAll    bool
	}{
		{10, true, true},
		{30, false, true},
		{200, false, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.sensors), func(t *testing.T) {
			s := daySnapshot(now)
			s.Sensors = nil
			for i := range tt.sensors {
				s.Sensors = append(s.Sensors, agent.SensorSnapshot{Name: "greenhouse_sensor_" + strconv.Itoa(i), Driver: "bme280",
					Interval: "30s", Healthy: i != 7, LastError: "bus stuck", LastReading: now,
					Values: map[string]float64{"temperature_c": 21.25, "humidity_pct": 40.5, "pressure_hpa": 1013.25}})
			}
			doc := Document(s, agent.PublishMetrics{}, Facts{Version: "v1"})
			if n := size(doc); n > maxState {
				t.Fatalf("%d sensors: report of %d bytes, over %d", tt.sensors, n, maxState)
			}
			sensors := doc["sensors"].(map[string]any)
			if (len(sensors) == tt.sensors) != tt.wantAll {
				t.Errorf("%d sensors reported, want all %v", len(sensors), tt.wantAll)
			}
			failing, _ := sensors["greenhouse_sensor_7"].(map[string]any)
			if failing == nil || failing["healthy"] != false {
				t.Errorf("the failing sensor is not in the report: %v", failing)
			}
			_, hasValues := failing["values"]
			if hasValues != tt.wantValues {
				t.Errorf("values reported %v, want %v", hasValues, tt.wantValues)
			}
			if !tt.wantAll && doc["sensors_healthy"] != tt.sensors-1 {
				t.Errorf("sensors_healthy %v, want %d", doc["sensors_healthy"], tt.sensors-1)
			}
		})
	}
}
