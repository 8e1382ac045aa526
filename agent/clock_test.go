package agent

import (
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// flipClock is unsynchronised until at, then synchronised.
type flipClock struct {
	at    time.Time
	mu    sync.Mutex
	calls int
}

func (c *flipClock) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return !time.Now().Before(c.at)
}

// rawReading is what the clock flag test reads of each published reading.
type rawReading struct {
	Seq         uint64 `json:"seq"`
	Type        string `json:"type"`
	Time        string `json:"time"`
	ClockSynced *bool  `json:"clock_synced"`
}

func TestReadingsBeforeClockSyncAreFlagged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		syncAt := t0.Add(450 * time.Millisecond)
		clk := &flipClock{at: syncAt}
		var (
			mu       sync.Mutex
			readings []rawReading
		)
		pub := &fakePub{fail: func(_ int, body []byte) error {
			var env struct{ Readings []rawReading }
			if err := json.Unmarshal(body, &env); err != nil {
				t.Errorf("payload: %v", err)
			}
			mu.Lock()
			readings = append(readings, env.Readings...)
			mu.Unlock()
			return nil
		}}
		logs := &syncBuf{}
		// One sensor, a reading every 100 ms from t=0: those at 0-400 ms
		// come before the sync, 500-900 ms after.
		a := start(t, testConfig(t, "", "", `
  - {name: a, driver: sim, interval: 100ms, count: 10}
`), pub, Options{ExitWhenIdle: true, Clock: clk, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}

		var flagged, unflagged int
		for _, r := range readings {
			ts, err := time.Parse(time.RFC3339Nano, r.Time)
			if err != nil {
				t.Fatal(err)
			}
			before := ts.Before(syncAt)
			switch {
			case before && (r.ClockSynced == nil || *r.ClockSynced):
				t.Errorf("seq %d at %s, before the clock synchronised, lacks clock_synced:false", r.Seq, r.Time)
			case !before && r.ClockSynced != nil:
				t.Errorf("seq %d at %s, after the clock synchronised, carries clock_synced:%v", r.Seq, r.Time, *r.ClockSynced)
			}
			if r.Type == "" && before {
				flagged++
			} else if r.Type == "" {
				unflagged++
			}
		}
		if flagged != 5 || unflagged != 5 {
			t.Errorf("%d measurements flagged and %d not, want 5 and 5", flagged, unflagged)
		}
		// Sampling did not wait for the clock: the first reading is at 0.
		if len(readings) == 0 || readings[0].Time != t0.UTC().Format("2006-01-02T15:04:05.000Z07:00") {
			t.Errorf("first reading not taken at start: %+v", readings)
		}

		out := logs.String()
		for _, want := range []string{"system clock is not synchronised yet", "system clock synchronised: readings are no longer flagged"} {
			if n := strings.Count(out, want); n != 1 {
				t.Errorf("log %q %d times, want once:\n%s", want, n, out)
			}
		}
		if strings.Contains(out, "no longer synchronised") {
			t.Errorf("logged a loss of synchronisation:\n%s", out)
		}
	})
}

func TestSyncedClockAtStartIsLoggedAndNotFlagged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := &flipClock{at: time.Now()}
		var mu sync.Mutex
		var bodies []string
		pub := &fakePub{fail: func(_ int, body []byte) error {
			mu.Lock()
			bodies = append(bodies, string(body))
			mu.Unlock()
			return nil
		}}
		logs := &syncBuf{}
		a := start(t, testConfig(t, "", "", `
  - {name: a, driver: sim, interval: 100ms, count: 3}
`), pub, Options{ExitWhenIdle: true, Clock: clk, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if len(bodies) == 0 {
			t.Fatal("nothing published")
		}
		for _, b := range bodies {
			if strings.Contains(b, "clock_synced") {
				t.Errorf("synchronised readings flagged: %s", b)
			}
		}
		if out := logs.String(); strings.Count(out, "system clock is synchronised") != 1 || strings.Contains(out, "not synchronised") {
			t.Errorf("start log:\n%s", out)
		}
	})
}
