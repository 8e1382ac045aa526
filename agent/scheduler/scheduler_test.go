package scheduler

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sensor-agent/sensor-agent/sensors"
)

// fake is a scripted sensor. read decides each result from the read index.
type fake struct {
	reads    atomic.Int64
	inflight atomic.Int64
	maxIn    atomic.Int64
	closes   atomic.Int64
	read     func(ctx context.Context, n int64) (sensors.Values, error)
}

func (f *fake) Read(ctx context.Context) (sensors.Values, error) {
	in := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxIn.Load()
		if in <= m || f.maxIn.CompareAndSwap(m, in) {
			break
		}
	}
	n := f.reads.Add(1)
	if f.read == nil {
		return sensors.Values{"n": float64(n)}, nil
	}
	return f.read(ctx, n)
}

func (f *fake) Close() error { f.closes.Add(1); return nil }

type collector struct {
	mu      sync.Mutex
	samples map[string][]Sample
	groups  []int       // the size of each group emitted
	groupAt []time.Time // when it was
	status  []Status
}

func (c *collector) emit(group []Sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.samples == nil {
		c.samples = map[string][]Sample{}
	}
	c.groups = append(c.groups, len(group))
	c.groupAt = append(c.groupAt, time.Now())
	for _, s := range group {
		c.samples[s.Sensor] = append(c.samples[s.Sensor], s)
	}
}

func (c *collector) stat(s Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status = append(c.status, s)
}

func (c *collector) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.samples[name])
}

func src(name string, interval time.Duration, f *fake) Source {
	return Source{Name: name, Driver: "fake", Interval: interval, Timeout: interval / 2,
		Open: func(context.Context) (sensors.Sensor, error) { return f, nil }}
}

// runFor runs the scheduler for d of fake time and returns the collector.
func runFor(t *testing.T, d time.Duration, opts Options, srcs ...Source) *collector {
	t.Helper()
	c := &collector{}
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	Run(ctx, srcs, opts, c.emit, c.stat)
	return c
}

func TestEachSensorOnItsOwnInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fast, slow := &fake{}, &fake{}
		start := time.Now()
		c := runFor(t, time.Second+time.Millisecond, Options{}, src("fast", 100*time.Millisecond, fast), src("slow", 250*time.Millisecond, slow))
		if got := c.count("fast"); got != 11 { // t = 0, 100, ..., 1000 ms
			t.Errorf("fast: %d readings, want 11", got)
		}
		if got := c.count("slow"); got != 5 { // t = 0, 250, ..., 1000 ms
			t.Errorf("slow: %d readings, want 5", got)
		}
		for i, s := range c.samples["slow"] {
			if want := start.Add(time.Duration(i) * 250 * time.Millisecond); !s.Time.Equal(want) {
				t.Errorf("slow reading %d at %v, want %v", i, s.Time.Sub(start), want.Sub(start))
			}
		}
	})
}

func TestFailingSensorBacksOffAndOthersCarryOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		good := &fake{}
		bad := &fake{read: func(context.Context, int64) (sensors.Values, error) { return nil, errors.New("i2c: remote I/O error") }}
		c := runFor(t, 1500*time.Millisecond+time.Millisecond, Options{MaxBackoff: 400 * time.Millisecond, ReopenAfter: 100},
			src("good", 100*time.Millisecond, good), src("bad", 100*time.Millisecond, bad))
		if got := c.count("good"); got != 16 {
			t.Errorf("good sensor: %d readings, want 16 (unaffected by the failing one)", got)
		}
		// Attempts at 0, 100, 300, 700, 1100, 1500 ms: doubling, capped at 400 ms.
		if got := bad.reads.Load(); got != 6 {
			t.Errorf("failing sensor: %d attempts, want 6 (backoff 100, 200, 400, 400, 400 ms)", got)
		}
		var last Status
		for _, s := range c.status {
			if s.Sensor == "bad" {
				last = s
			}
		}
		if last.ConsecutiveErrors != 6 || last.LastError == nil {
			t.Errorf("status = %+v", last)
		}
	})
}

func TestRecoversAndResetsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{read: func(_ context.Context, n int64) (sensors.Values, error) {
			if n <= 2 {
				return nil, errors.New("crc mismatch")
			}
			return sensors.Values{"v": 1}, nil
		}}
		// Attempts: 0 (fail), 100 (fail), 300 (ok), 400, 500, ..., 1000.
		c := runFor(t, time.Second+time.Millisecond, Options{}, src("s", 100*time.Millisecond, f))
		if got := c.count("s"); got != 8 {
			t.Errorf("%d readings, want 8", got)
		}
	})
}

func TestMissingAtBootIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		opens := 0
		s := Source{Name: "s", Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond,
			Open: func(context.Context) (sensors.Sensor, error) {
				opens++
				if opens <= 3 {
					return nil, errors.New("no bus found")
				}
				return f, nil
			}}
		// Opens at 0, 100, 300 fail; 700 succeeds; reads at 700, 800, 900, 1000.
		c := runFor(t, time.Second+time.Millisecond, Options{}, s)
		if opens != 4 || c.count("s") != 4 {
			t.Errorf("opens = %d, readings = %d; want 4 and 4", opens, c.count("s"))
		}
	})
}

func TestReadTimeoutNeverOverlapsReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		hung := &fake{read: func(_ context.Context, n int64) (sensors.Values, error) {
			if n == 1 {
				<-release // ignores ctx, like a periph call stuck in the kernel
			}
			return sensors.Values{"v": 1}, nil
		}}
		other := &fake{}
		go func() {
			time.Sleep(700 * time.Millisecond)
			close(release)
		}()
		c := runFor(t, 2*time.Second-time.Millisecond, Options{MaxBackoff: 200 * time.Millisecond},
			src("hung", 100*time.Millisecond, hung), src("other", 100*time.Millisecond, other))
		if hung.maxIn.Load() != 1 {
			t.Errorf("%d reads ran at once on one device; want 1", hung.maxIn.Load())
		}
		if c.count("hung") == 0 {
			t.Error("the sensor never recovered after its stuck read returned")
		}
		if c.count("other") != 20 {
			t.Errorf("other sensor: %d readings, want 20", c.count("other"))
		}
		var sawTimeout bool
		for _, s := range c.status {
			if s.Sensor == "hung" && s.LastError != nil && s.ConsecutiveErrors == 1 {
				sawTimeout = true
			}
		}
		if !sawTimeout {
			t.Error("no timeout error reported")
		}
	})
}

func TestReopenAfterRepeatedErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{read: func(context.Context, int64) (sensors.Values, error) { return nil, errors.New("bus error") }}
		opens := 0
		s := Source{Name: "s", Interval: 10 * time.Millisecond, Timeout: 5 * time.Millisecond,
			Open: func(context.Context) (sensors.Sensor, error) { opens++; return f, nil }}
		runFor(t, time.Second, Options{MaxBackoff: 10 * time.Millisecond, ReopenAfter: 3}, s)
		reads := f.reads.Load()
		if f.closes.Load() < reads/3-1 || opens < int(reads/3) {
			t.Errorf("%d reads, %d closes, %d opens: want a close and re-open every 3 errors", reads, f.closes.Load(), opens)
		}
	})
}

func TestRunReturnsWhenAllDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mk := func(n int64) *fake {
			return &fake{read: func(_ context.Context, i int64) (sensors.Values, error) {
				if i > n {
					return nil, sensors.ErrDone
				}
				return sensors.Values{"v": float64(i)}, nil
			}}
		}
		a, b := mk(3), mk(5)
		c := &collector{}
		Run(t.Context(), []Source{src("a", time.Second, a), src("b", time.Hour, b)}, Options{}, c.emit, c.stat)
		if c.count("a") != 3 || c.count("b") != 5 {
			t.Errorf("readings a=%d b=%d, want 3 and 5", c.count("a"), c.count("b"))
		}
		if a.closes.Load() != 1 || b.closes.Load() != 1 {
			t.Error("finished sensors must be closed")
		}
	})
}

func TestSensorsDueTogetherAreOneGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var srcs []Source
		for i := range 10 {
			srcs = append(srcs, src(string(rune('a'+i)), 100*time.Millisecond, &fake{}))
		}
		srcs = append(srcs, src("slow", 300*time.Millisecond, &fake{}))
		c := runFor(t, time.Second+time.Millisecond, Options{}, srcs...)
		// Reads at 0, 100, ..., 1000 ms: one group per wake-up, the slow
		// sensor joining every third.
		if len(c.groups) != 11 {
			t.Fatalf("%d groups %v, want 11: one per wake-up", len(c.groups), c.groups)
		}
		for i, n := range c.groups {
			want := 10
			if i%3 == 0 {
				want = 11
			}
			if n != want {
				t.Errorf("group %d has %d samples, want %d (all sensors due then)", i, n, want)
			}
		}
	})
}

func TestClockSetBackKeepsSampling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var back atomic.Int64 // how far the wall clock was set back
		now := func() time.Time { return time.Now().Add(-time.Duration(back.Load())) }
		go func() {
			time.Sleep(450 * time.Millisecond)
			back.Store(int64(time.Hour)) // a wrong NTP answer, a fake-hwclock restore
		}()
		c := runFor(t, time.Second+time.Millisecond, Options{Now: now}, src("s", 100*time.Millisecond, &fake{}))
		// Reads at 0..400 ms, then on at once on the new clock's grid.
		if got := c.count("s"); got < 10 {
			t.Errorf("%d readings in 1 s at 100 ms, want at least 10: sampling stalled when the clock went back", got)
		}
	})
}

func TestSlowSensorDoesNotHoldBackTheGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		slow := &fake{read: func(context.Context, int64) (sensors.Values, error) {
			time.Sleep(200 * time.Millisecond) // a DS18B20 converting
			return sensors.Values{"v": 1}, nil
		}}
		c := runFor(t, 450*time.Millisecond, Options{},
			src("a", 100*time.Millisecond, &fake{}), src("b", 100*time.Millisecond, &fake{}),
			Source{Name: "slow", Interval: time.Second, Timeout: time.Second,
				Open: func(context.Context) (sensors.Sensor, error) { return slow, nil }})
		if len(c.groups) < 2 || c.groups[0] != 2 {
			t.Fatalf("groups %v: want the fast sensors' first group on its own", c.groups)
		}
		if wait := c.groupAt[0].Sub(start); wait != maxLinger {
			t.Errorf("first group emitted after %s, want %s (the linger), not after the slow read", wait, maxLinger)
		}
		if c.count("slow") != 1 || c.count("a") != 5 {
			t.Errorf("readings slow=%d a=%d, want 1 and 5", c.count("slow"), c.count("a"))
		}
	})
}
