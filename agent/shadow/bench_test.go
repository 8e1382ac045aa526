package shadow

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// countingSource counts what shadow requests carry: bodies both ways and
// AWS's metering unit, each operation's document in 1 KB steps (the
// update's request, the get's answer).
type countingSource struct {
	*fakeSource
	requests, up, down, units atomic.Int64
}

func (c *countingSource) Shadow(ctx context.Context, method, thing, name string, body []byte) (publisher.ShadowReply, error) {
	rep, err := c.fakeSource.Shadow(ctx, method, thing, name, body)
	c.requests.Add(1)
	c.up.Add(int64(len(body)))
	c.down.Add(int64(len(rep.Body)))
	doc := len(body)
	if method == http.MethodGet {
		doc = len(rep.Body)
	}
	c.units.Add(int64(max(1, (doc+1023)/1024)))
	return rep, err
}

// daySnapshot is 10 healthy sensors with 3 values each, as at the
// example config's scale, at time now: values move, a reading a second.
func daySnapshot(now time.Time) agent.Snapshot {
	s := agent.Snapshot{Device: "pi-1", ClockSynced: true, Time: now,
		Certificate: &agent.Certificate{ID: "3244a40acd9bb208e1b554946dd6b480777f01b7f37aadaea867b38ef5df1280", DaysLeft: 341,
			NotAfter: now.Add(341 * 24 * time.Hour).Truncate(24 * time.Hour)},
		Route:   agent.Route{Host: "abc-ats.iot.eu-west-1.amazonaws.com", Port: 443, ALPN: true},
		Publish: agent.PublishState{LastSuccess: now.Add(-3 * time.Second)},
		Spool:   agent.SpoolSnapshot{Pending: 30, Oldest: now.Add(-10 * time.Second), DiskBytes: 1 << 20},
	}
	x := float64(now.Unix())
	for i := range 10 {
		s.Sensors = append(s.Sensors, agent.SensorSnapshot{Name: fmt.Sprintf("sensor%d", i), Driver: "bme280",
			Interval: "1s", Healthy: true, LastReading: now.Truncate(time.Second),
			Values: map[string]float64{
				"temperature_c": math.Round(2000+300*math.Sin(x/3600+float64(i))) / 100,
				"humidity_pct":  math.Round(5000+2000*math.Sin(x/1800+float64(i))) / 100,
				"pressure_hpa":  math.Round(101300+500*math.Sin(x/7200)) / 100,
			}})
	}
	return s
}

// BenchmarkShadowDay is a day of the shadow at the defaults (report and
// poll every 5 minutes, health looked at every 10 s) for 10 sensors:
// requests, bytes and AWS's 1 KB metering units per day, against the
// in-process emulator. The clock is simulated: a day takes seconds.
func BenchmarkShadowDay(b *testing.B) {
	_, client := startEmu(b)
	for b.Loop() {
		src := &countingSource{fakeSource: &fakeSource{Client: client}}
		t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
		l := &Loop{Thing: fmt.Sprintf("pi-bench-%d", time.Now().UnixNano()), Name: "sensor-agent",
			ReportEvery: 5 * time.Minute, PollEvery: 5 * time.Minute, CheckEvery: 10 * time.Second,
			Log: slog.New(slog.DiscardHandler), Source: func() Source { return src },
			Facts:   func() Facts { return Facts{Version: "v1.4.0", Started: t0, ConfigHash: "0123456789abcdef"} },
			Desired: func(map[string]any, int64) {}}
		for now := t0; now.Before(t0.Add(24 * time.Hour)); now = now.Add(l.CheckEvery) {
			src.mu.Lock()
			src.snap = daySnapshot(now)
			src.mu.Unlock()
			l.step(context.Background(), now)
		}
		b.ReportMetric(float64(src.requests.Load()), "requests/day")
		b.ReportMetric(float64(src.up.Load())/1e3, "kB-sent/day")
		b.ReportMetric(float64(src.down.Load())/1e3, "kB-received/day")
		b.ReportMetric(float64(src.units.Load()), "1KB-units/day")
		b.ReportMetric(float64(size(Document(daySnapshot(t0), agent.PublishMetrics{}, l.Facts()))), "report-bytes")
	}
}
