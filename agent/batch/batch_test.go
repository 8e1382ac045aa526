package batch

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/reading"
	"github.com/sensor-agent/sensor-agent/sensors"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func rd(seq uint64, sensor string, t time.Time) *reading.Reading {
	return &reading.Reading{Seq: seq, Sensor: sensor, Time: t, Values: sensors.Values{"temperature_c": 21.43, "humidity_pct": 40.2}}
}

type envelope struct {
	Device   string `json:"device"`
	SentAt   string `json:"sent_at"`
	Readings []struct {
		Seq    uint64             `json:"seq"`
		Sensor string             `json:"sensor"`
		Time   string             `json:"time"`
		Values map[string]float64 `json:"values"`
	} `json:"readings"`
}

func decode(t *testing.T, b Batch) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(b.Payload, &e); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, b.Payload)
	}
	if len(e.Readings) != b.Count || e.Readings[0].Seq != b.FirstSeq || e.Readings[len(e.Readings)-1].Seq != b.LastSeq {
		t.Fatalf("batch metadata %d/%d-%d does not match payload", b.Count, b.FirstSeq, b.LastSeq)
	}
	return e
}

func TestFlushTriggers(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		opts        Options
		adds        int
		advance     time.Duration
		wantBatches []int // readings per flushed batch, in order
	}{
		{"max_readings", Options{MaxReadings: 3, MaxBytes: 64 << 10, FlushInterval: time.Hour}, 7, 0, []int{3, 3}},
		{"max_bytes", Options{MaxReadings: 1000, MaxBytes: 1024, FlushInterval: time.Hour}, 40, 0, nil /* checked below */},
		{"flush_interval", Options{MaxReadings: 1000, MaxBytes: 64 << 10, FlushInterval: 10 * time.Second}, 5, 10 * time.Second, []int{5}},
		{"interval not yet", Options{MaxReadings: 1000, MaxBytes: 64 << 10, FlushInterval: 10 * time.Second}, 5, 9 * time.Second, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t0}
			tt.opts.Device = "pi-1"
			b := New(tt.opts, clk.now)
			var out []Batch
			for i := range tt.adds {
				out = append(out, b.Add("t", rd(uint64(i+1), "s", t0))...)
			}
			clk.t = clk.t.Add(tt.advance)
			out = append(out, b.Due()...)
			if tt.name == "max_bytes" {
				if len(out) < 2 {
					t.Fatalf("want several size-bound batches, got %d", len(out))
				}
				for _, bt := range out {
					if len(bt.Payload) > 1024 {
						t.Errorf("batch of %d bytes exceeds max_bytes 1024", len(bt.Payload))
					}
					decode(t, bt)
				}
				// The flush must happen only when one more reading
				// would not fit.
				next := len(rd(99, "s", t0).AppendJSON(nil)) + 1
				if len(out[0].Payload)+next <= 1024 {
					t.Errorf("batch flushed early: %d bytes + %d would still fit", len(out[0].Payload), next)
				}
				return
			}
			if len(out) != len(tt.wantBatches) {
				t.Fatalf("got %d batches, want %d", len(out), len(tt.wantBatches))
			}
			var seq uint64 = 1
			for i, bt := range out {
				e := decode(t, bt)
				if bt.Count != tt.wantBatches[i] {
					t.Errorf("batch %d: %d readings, want %d", i, bt.Count, tt.wantBatches[i])
				}
				if e.Device != "pi-1" || e.SentAt != clk.t.Format(reading.TimeLayout) {
					t.Errorf("envelope %q %q", e.Device, e.SentAt)
				}
				for _, r := range e.Readings {
					if r.Seq != seq {
						t.Errorf("seq %d, want %d", r.Seq, seq)
					}
					seq++
				}
			}
		})
	}
}

func TestNeverOver128KB(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := New(Options{Device: strings.Repeat("d", 100), MaxReadings: 1 << 20, MaxBytes: MaxPayload, FlushInterval: time.Hour}, func() time.Time { return t0 })
	var out []Batch
	for i := range 20000 {
		r := rd(uint64(i+1), "sensor-with-a-long-name", t0)
		r.Values["note_"+fmt.Sprint(i%7)] = float64(i) * 1.000001
		out = append(out, b.Add("t", r)...)
	}
	out = append(out, b.Flush()...)
	total := 0
	for _, bt := range out {
		if len(bt.Payload) > MaxPayload {
			t.Fatalf("payload %d bytes > %d", len(bt.Payload), MaxPayload)
		}
		decode(t, bt)
		total += bt.Count
	}
	if total != 20000 {
		t.Fatalf("%d readings out, want 20000", total)
	}
	if len(out[0].Payload) < MaxPayload-300 {
		t.Errorf("first batch only %d bytes: the bound should be used", len(out[0].Payload))
	}
}

func TestTopicsBatchedSeparately(t *testing.T) {
	t0 := time.Unix(0, 0)
	clk := &fakeClock{t0}
	b := New(Options{Device: "d", MaxReadings: 2, MaxBytes: 64 << 10, FlushInterval: 5 * time.Second}, clk.now)
	var out []Batch
	out = append(out, b.Add("a", rd(1, "a", t0))...)
	out = append(out, b.Add("b", rd(2, "b", t0))...)
	out = append(out, b.Add("a", rd(3, "a", t0))...)
	if len(out) != 1 || out[0].Topic != "a" || out[0].FirstSeq != 1 || out[0].LastSeq != 3 {
		t.Fatalf("got %+v", out)
	}
	if next, ok := b.NextDue(); !ok || !next.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("NextDue = %v %v", next, ok)
	}
	clk.t = t0.Add(5 * time.Second)
	due := b.Due()
	if len(due) != 1 || due[0].Topic != "b" {
		t.Fatalf("due = %+v", due)
	}
	if _, ok := b.NextDue(); ok {
		t.Fatal("nothing should be pending")
	}
}

func TestSingleFormat(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := New(Options{Device: "pi-1", Single: true, MaxReadings: 500, MaxBytes: 64 << 10, FlushInterval: time.Hour}, func() time.Time { return t0 })
	out := b.Add("t", rd(5, "s", t0))
	if len(out) != 1 || out[0].Count != 1 {
		t.Fatalf("got %+v", out)
	}
	var m map[string]any
	if err := json.Unmarshal(out[0].Payload, &m); err != nil || m["device"] != "pi-1" || m["seq"] != 5.0 {
		t.Fatalf("payload %s (%v)", out[0].Payload, err)
	}
}

func BenchmarkAdd(b *testing.B) {
	t0 := time.Unix(0, 0)
	bt := New(Options{Device: "pi", MaxReadings: 500, MaxBytes: 64 << 10, FlushInterval: time.Hour}, func() time.Time { return t0 })
	r := rd(1, "greenhouse", t0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Seq = uint64(i)
		bt.Add("t", r)
	}
}
