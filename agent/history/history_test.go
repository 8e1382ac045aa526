package history

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

// fill adds n readings of every sensor, one per interval, value i.
func fill(s *Store, sensors []Sensor, keys []string, n int) time.Time {
	var last time.Time
	for i := range n {
		for _, c := range sensors {
			v := map[string]float64{}
			for _, k := range keys {
				v[k] = float64(i)
			}
			last = t0.Add(time.Duration(i) * c.Interval)
			s.Recorder(c.Name).Add(last, v)
		}
	}
	return last
}

func sensorsOf(n int, interval time.Duration) []Sensor {
	out := make([]Sensor, n)
	for i := range out {
		out[i] = Sensor{Name: fmt.Sprintf("s%d", i), Interval: interval}
	}
	return out
}

func TestBoundAndCoverage(t *testing.T) {
	tests := []struct {
		name     string
		sensors  int
		interval time.Duration
		keys     int
		maxBytes int64
		wantAll  bool // every reading of the window kept
	}{
		{"10 x 1 Hz x 3 values in 2 MiB: all kept", 10, time.Second, 3, 2 << 20, true},
		{"10 x 10 Hz x 3 values in 2 MiB: averaged", 10, 100 * time.Millisecond, 3, 2 << 20, false},
		{"1 x 100 Hz x 1 value in 64 KiB: averaged", 1, 10 * time.Millisecond, 1, 64 << 10, false},
		{"40 x 1 Hz x 4 values in 2 MiB: averaged", 40, time.Second, 4, 2 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Store
			cfg := sensorsOf(tt.sensors, tt.interval)
			s.Configure(time.Hour, tt.maxBytes, cfg)
			keys := make([]string, tt.keys)
			for i := range keys {
				keys[i] = fmt.Sprintf("v%d_c", i)
			}
			n := int(2 * time.Hour / tt.interval) // two windows: the ring wraps
			now := fill(&s, cfg, keys, n)
			if b := s.Bytes(); b > tt.maxBytes {
				t.Fatalf("Bytes() = %d, over the bound %d", b, tt.maxBytes)
			}
			for _, h := range s.Since(time.Time{}, now, 0) {
				if (h.Step == 0) != tt.wantAll {
					t.Errorf("%s: step %d ms, want every reading kept = %v", h.Name, h.Step, tt.wantAll)
				}
				if len(h.Series) != tt.keys {
					t.Fatalf("%s: %d series, want %d", h.Name, len(h.Series), tt.keys)
				}
				for _, sr := range h.Series {
					first := time.UnixMilli(sr.Time[0])
					// The oldest point kept is within two buckets (or readings) of the window's start.
					slack := 2*tt.interval + 2*time.Duration(h.Step)*time.Millisecond
					if start := now.Add(-time.Hour); first.Before(start) || first.After(start.Add(slack)) {
						t.Errorf("%s/%s: oldest point %s, want within %s after %s", h.Name, sr.Key, first, slack, start)
					}
					if got := time.UnixMilli(sr.Time[len(sr.Time)-1]); now.Sub(got) > time.Duration(h.Step)*time.Millisecond {
						t.Errorf("%s/%s: newest point %s, want %s", h.Name, sr.Key, got, now)
					}
					if tt.wantAll && len(sr.Time) < int(time.Hour/tt.interval) {
						t.Errorf("%s/%s: %d points, want the hour's %d", h.Name, sr.Key, len(sr.Time), time.Hour/tt.interval)
					}
				}
			}
		})
	}
}

func TestBucketsAverage(t *testing.T) {
	var s Store
	// 1 KiB for one 1 ms sensor over a second: buckets, not readings.
	s.Configure(time.Second, 1<<10, []Sensor{{Name: "a", Interval: time.Millisecond}})
	for i := range 1000 {
		s.Recorder("a").Add(t0.Add(time.Duration(i)*time.Millisecond), map[string]float64{"x": float64(i % 2)})
	}
	h := s.Since(time.Time{}, t0.Add(time.Second), 0)[0]
	if h.Step == 0 {
		t.Fatal("step 0: want readings averaged into buckets")
	}
	for i, v := range h.Series[0].Vals[:len(h.Series[0].Vals)-1] {
		if v < 0.4 || v > 0.6 {
			t.Errorf("bucket %d = %g, want the mean of alternating 0 and 1, about 0.5", i, v)
		}
	}
}

func TestSinceAndLimit(t *testing.T) {
	var s Store
	s.Configure(time.Hour, 1<<20, []Sensor{{Name: "a", Interval: time.Second}})
	now := fill(&s, []Sensor{{Name: "a", Interval: time.Second}}, []string{"x"}, 100)
	tests := []struct {
		name  string
		since time.Time
		limit int
		want  int
		first float32
	}{
		{"all", time.Time{}, 0, 100, 0},
		{"after the 90th", t0.Add(89 * time.Second), 0, 10, 90},
		{"limited to 10: means of 10", time.Time{}, 10, 10, 4.5},
		{"limited to 30: 25 buckets of 4", time.Time{}, 30, 25, 1.5},
		{"nothing new", now, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr := s.Since(tt.since, now, tt.limit)[0].Series[0]
			if len(sr.Time) != tt.want || len(sr.Vals) != tt.want {
				t.Fatalf("%d/%d points, want %d", len(sr.Time), len(sr.Vals), tt.want)
			}
			if tt.want > 0 && sr.Vals[0] != tt.first {
				t.Errorf("first value %g, want %g", sr.Vals[0], tt.first)
			}
		})
	}
}

func TestReloadKeepsPoints(t *testing.T) {
	var s Store
	cfg := []Sensor{{Name: "a", Interval: time.Second}, {Name: "gone", Interval: time.Second}}
	s.Configure(time.Hour, 1<<20, cfg)
	now := fill(&s, cfg, []string{"x", "y"}, 60)
	s.Configure(time.Hour, 1<<20, []Sensor{{Name: "a", Interval: 2 * time.Second}, {Name: "new", Interval: time.Second}})
	got := s.Since(time.Time{}, now, 0)
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "new" {
		t.Fatalf("sensors after reload: %+v", got)
	}
	if n := len(got[0].Series); n != 2 {
		t.Fatalf("a: %d series after reload, want 2", n)
	}
	if n := len(got[0].Series[0].Time); n != 60 {
		t.Errorf("a: %d points after reload, want the 60 taken", n)
	}
	if len(got[1].Series) != 0 {
		t.Errorf("new: %d series, want none yet", len(got[1].Series))
	}
}

func TestClockBackAndBadValues(t *testing.T) {
	var s Store
	s.Configure(time.Hour, 1<<20, []Sensor{{Name: "a", Interval: time.Second}})
	for i := range 10 {
		s.Recorder("a").Add(t0.Add(time.Duration(i)*time.Second), map[string]float64{"x": float64(i)})
	}
	back := t0.Add(-time.Hour)
	s.Recorder("a").Add(back, map[string]float64{"x": 42})
	s.Recorder("a").Add(back.Add(time.Second), map[string]float64{"x": nan()})
	s.Recorder("unknown").Add(back, map[string]float64{"x": 1})
	sr := s.Since(time.Time{}, back.Add(time.Minute), 0)[0].Series[0]
	if len(sr.Vals) != 1 || sr.Vals[0] != 42 {
		t.Errorf("after the clock went back: %v, want only the reading taken since, [42]", sr.Vals)
	}
	if r := s.Recorder("unknown"); r != nil {
		t.Errorf("unconfigured sensor has a recorder")
	}
}

func TestNilStore(t *testing.T) {
	var s *Store
	s.Configure(time.Hour, 1, nil)
	s.Recorder("a").Add(t0, map[string]float64{"x": 1})
	if s.Since(t0, t0, 0) != nil || s.Bytes() != 0 {
		t.Error("a nil store answered with data")
	}
}

func TestAddDoesNotAllocate(t *testing.T) {
	var s Store
	s.Configure(time.Hour, 2<<20, []Sensor{{Name: "a", Interval: time.Second}})
	v := map[string]float64{"temperature_c": 21, "humidity_pct": 40}
	i := 0
	r := s.Recorder("a")
	r.Add(t0, v)
	if n := testing.AllocsPerRun(1000, func() { i++; r.Add(t0.Add(time.Duration(i)*time.Second), v) }); n != 0 {
		t.Errorf("Add allocates %g times per reading, want 0", n)
	}
}

func BenchmarkAdd(b *testing.B) {
	var s Store
	cfg := sensorsOf(10, time.Second)
	s.Configure(time.Hour, 2<<20, cfg)
	recs := make([]*Recorder, len(cfg))
	for i, c := range cfg {
		recs[i] = s.Recorder(c.Name)
	}
	v := map[string]float64{"temperature_c": 21, "humidity_pct": 40, "pressure_hpa": 1013}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		recs[i%10].Add(t0.Add(time.Duration(i)*100*time.Millisecond), v)
	}
}

func nan() float64 { var z float64; return z / z }
