package batch

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/reading"
	"github.com/sensor-agent/sensor-agent/sensors"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func rd(seq uint64, sensor string, t time.Time) []byte {
	r := reading.Reading{Seq: seq, Sensor: sensor, Time: t, Values: sensors.Values{"temperature_c": 21.43, "humidity_pct": 40.2}}
	return r.AppendJSON(nil)
}

type envelope struct {
	Device      string    `json:"device"`
	Incarnation string    `json:"incarnation"`
	SentAt      string    `json:"sent_at"`
	Dropped     []Dropped `json:"dropped"`
	Readings    []struct {
		Seq    uint64             `json:"seq"`
		Sensor string             `json:"sensor"`
		Time   string             `json:"time"`
		Values map[string]float64 `json:"values"`
	} `json:"readings"`
}

func (d *Dropped) UnmarshalJSON(b []byte) error {
	var v struct {
		First, Last, Count uint64
		Reason             string
		Incarnation        string
	}
	err := json.Unmarshal(b, &v)
	*d = Dropped(v)
	return err
}

var testMeta = Meta{Device: "pi-1", Incarnation: "0123456789abcdef0123456789abcdef", SentAt: time.Date(2026, 11, 26, 13, 0, 5, 120e6, time.UTC)}

func decode(t *testing.T, b Batch, m Meta) (envelope, []byte) {
	t.Helper()
	p := Envelope(nil, m, &b, false)
	var e envelope
	if err := json.Unmarshal(p, &e); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, p)
	}
	if len(e.Readings) != b.Count() {
		t.Fatalf("%d readings in payload, batch says %d", len(e.Readings), b.Count())
	}
	for i, r := range e.Readings {
		if r.Seq != b.Seqs[i] {
			t.Fatalf("reading %d has seq %d, batch says %d", i, r.Seq, b.Seqs[i])
		}
	}
	return e, p
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
				out = append(out, b.Add(Stream{Topic: "t"}, uint64(i+1), rd(uint64(i+1), "s", t0))...)
			}
			clk.t = clk.t.Add(tt.advance)
			out = append(out, b.Due()...)
			if len(out) != len(tt.wantBatches) {
				t.Fatalf("got %d batches, want %d", len(out), len(tt.wantBatches))
			}
			var seq uint64 = 1
			for i, bt := range out {
				e, _ := decode(t, bt, testMeta)
				if bt.Count() != tt.wantBatches[i] {
					t.Errorf("batch %d: %d readings, want %d", i, bt.Count(), tt.wantBatches[i])
				}
				if e.Device != "pi-1" || e.SentAt != "2026-11-26T13:00:05.120Z" || e.Incarnation != testMeta.Incarnation {
					t.Errorf("envelope %+v", e)
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

func TestMaxBytes(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := New(Options{Device: "pi-1", Incarnation: testMeta.Incarnation, MaxReadings: 1000, MaxBytes: 1024, FlushInterval: time.Hour}, func() time.Time { return t0 })
	var out []Batch
	for i := range 40 {
		out = append(out, b.Add(Stream{Topic: "t"}, uint64(i+1), rd(uint64(i+1), "s", t0))...)
	}
	if len(out) < 2 {
		t.Fatalf("want several size-bound batches, got %d", len(out))
	}
	next := len(rd(99, "s", t0)) + 1
	for _, bt := range out {
		_, p := decode(t, bt, testMeta)
		if len(p) > 1024 {
			t.Errorf("message of %d bytes exceeds max_bytes 1024", len(p))
		}
		// Flushed only when one more reading would not fit.
		if len(p)+next <= 1024 {
			t.Errorf("batch flushed early: %d bytes + %d would still fit", len(p), next)
		}
	}
}

func TestNeverOver128KB(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := New(Options{Device: strings.Repeat("d", 100), Incarnation: testMeta.Incarnation, MaxReadings: 1 << 20, MaxBytes: MaxPayload, FlushInterval: time.Hour}, func() time.Time { return t0 })
	var out []Batch
	for i := range 20000 {
		r := reading.Reading{Seq: uint64(i + 1), Sensor: "sensor-with-a-long-name", Time: t0,
			Values: sensors.Values{"temperature_c": 21.43, fmt.Sprintf("note_%d", i%7): float64(i) * 1.000001}}
		out = append(out, b.Add(Stream{Topic: "t"}, r.Seq, r.AppendJSON(nil))...)
	}
	out = append(out, b.Flush()...)
	// The worst envelope: every dropped slot used with the largest numbers.
	m := Meta{Device: strings.Repeat("d", 100), Incarnation: testMeta.Incarnation, SentAt: t0}
	for range MaxDropped {
		m.Dropped = append(m.Dropped, Dropped{^uint64(0), ^uint64(0), ^uint64(0), strings.Repeat("x", 2*maxReason), strings.Repeat("f", 2*incLen)})
	}
	total := 0
	for _, bt := range out {
		_, p := decode(t, bt, m)
		if len(p) > MaxPayload {
			t.Fatalf("payload %d bytes > %d", len(p), MaxPayload)
		}
		total += bt.Count()
	}
	if total != 20000 {
		t.Fatalf("%d readings out, want 20000", total)
	}
	if len(out[0].Body) < MaxPayload-droppedReserve-500 {
		t.Errorf("first batch only %d bytes: the bound should be used", len(out[0].Body))
	}
}

func TestTopicsBatchedSeparately(t *testing.T) {
	t0 := time.Unix(0, 0)
	clk := &fakeClock{t0}
	b := New(Options{Device: "d", MaxReadings: 2, MaxBytes: 64 << 10, FlushInterval: 5 * time.Second}, clk.now)
	var out []Batch
	out = append(out, b.Add(Stream{Topic: "a"}, 1, rd(1, "a", t0))...)
	out = append(out, b.Add(Stream{Topic: "b"}, 2, rd(2, "b", t0))...)
	out = append(out, b.Add(Stream{Topic: "a"}, 3, rd(3, "a", t0))...)
	if len(out) != 1 || out[0].Topic != "a" || out[0].Seqs[0] != 1 || out[0].Seqs[1] != 3 {
		t.Fatalf("got %+v", out)
	}
	if next, ok := b.NextDue(); !ok || !next.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("NextDue = %v %v", next, ok)
	}
	if b.Len() != 1 {
		t.Fatalf("Len = %d, want 1", b.Len())
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
	out := b.Add(Stream{Topic: "t"}, 5, rd(5, "s", t0))
	if len(out) != 1 || out[0].Count() != 1 {
		t.Fatalf("got %+v", out)
	}
	m := testMeta
	m.Dropped = []Dropped{{1, 3, 3, "spool full", ""}}
	p := Envelope(nil, m, &out[0], true)
	var got map[string]any
	if err := json.Unmarshal(p, &got); err != nil {
		t.Fatalf("payload %s: %v", p, err)
	}
	if got["device"] != "pi-1" || got["seq"] != 5.0 || got["sensor"] != "s" || got["incarnation"] != m.Incarnation || got["dropped"] == nil {
		t.Fatalf("payload %s", p)
	}
}

func TestEnvelopeDropped(t *testing.T) {
	b := Batch{Stream: Stream{Topic: "t"}, Seqs: []uint64{9}, Body: rd(9, "s", time.Unix(0, 0))}
	b.Ends = []int{len(b.Body)}
	m := testMeta
	m.Dropped = []Dropped{{First: 1, Last: 4, Count: 4, Reason: "spool full"}}
	e, _ := decode(t, b, m)
	if len(e.Dropped) != 1 || e.Dropped[0] != (Dropped{1, 4, 4, "spool full", ""}) {
		t.Fatalf("dropped = %+v", e.Dropped)
	}
}

// Readings numbered under another incarnation (carried from a deleted
// spool, or volatile while the disk failed) go in messages of their own,
// which name it; a volatile one is marked. A dropped range names its
// incarnation only when it is not the message's.
func TestStreams(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := New(Options{Device: "pi-1", MaxReadings: 500, MaxBytes: 64 << 10, FlushInterval: time.Hour}, func() time.Time { return t0 })
	const other = "ffffffffffffffffffffffffffffffff"
	b.Add(Stream{Topic: "t"}, 1, rd(1, "s", t0))
	b.Add(Stream{Topic: "t", Incarnation: other, Volatile: true}, 2, rd(2, "s", t0))
	b.Add(Stream{Topic: "t"}, 3, rd(3, "s", t0))
	out := b.Flush()
	if len(out) != 2 || !slices.Equal(out[0].Seqs, []uint64{1, 3}) || !slices.Equal(out[1].Seqs, []uint64{2}) {
		t.Fatalf("batches %+v", out)
	}
	m := testMeta
	m.Dropped = []Dropped{{1, 1, 1, "memory full", other}, {5, 5, 1, "spool full", testMeta.Incarnation}}
	for i, want := range []string{
		`{"device":"pi-1","incarnation":"0123456789abcdef0123456789abcdef","sent_at":"2026-11-26T13:00:05.120Z","dropped":[{"first":1,"last":1,"count":1,"reason":"memory full","incarnation":"ffffffffffffffffffffffffffffffff"},{"first":5,"last":5,"count":1,"reason":"spool full"}],"readings":[`,
		`{"device":"pi-1","incarnation":"ffffffffffffffffffffffffffffffff","volatile":true,"sent_at":"2026-11-26T13:00:05.120Z","dropped":[{"first":1,"last":1,"count":1,"reason":"memory full"},{"first":5,"last":5,"count":1,"reason":"spool full","incarnation":"0123456789abcdef0123456789abcdef"}],"readings":[`,
	} {
		if p := Envelope(nil, m, &out[i], false); !strings.HasPrefix(string(p), want) {
			t.Errorf("message %d:\n%s\nwant a prefix\n%s", i, p, want)
		}
	}
}

func TestSplit(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := New(Options{Device: "d", MaxReadings: 5, MaxBytes: 64 << 10, FlushInterval: time.Hour}, func() time.Time { return t0 })
	var full []Batch
	for i := range 5 {
		full = append(full, b.Add(Stream{Topic: "t"}, uint64(i+1), rd(uint64(i+1), "s", t0))...)
	}
	x, y := full[0].Split()
	if x.Count() != 2 || y.Count() != 3 {
		t.Fatalf("split %d/%d", x.Count(), y.Count())
	}
	decode(t, x, testMeta)
	decode(t, y, testMeta)
	if string(y.Reading(0)) != string(rd(3, "s", t0)) || string(x.Reading(1)) != string(rd(2, "s", t0)) {
		t.Fatal("Reading(i) does not return the i-th reading")
	}
}

func BenchmarkAdd(b *testing.B) {
	t0 := time.Unix(0, 0)
	bt := New(Options{Device: "pi", MaxReadings: 500, MaxBytes: 64 << 10, FlushInterval: time.Hour}, func() time.Time { return t0 })
	r := rd(1, "greenhouse", t0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		bt.Add(Stream{Topic: "t"}, uint64(i), r)
	}
}
