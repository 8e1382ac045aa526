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

	"github.com/sensor-agent/sensor-agent/agent/config"
)

// testLimits are round numbers for driving watchdog.check by hand.
var testLimits = watchdogLimits{
	Sampling:        time.Minute,
	SamplingFailing: 6 * time.Minute,
	Sending:         time.Minute,
	Retrying:        40 * time.Minute,
}

// step is one snapshot the test feeds the watchdog, at an offset from t0.
type step struct {
	at     time.Duration
	p      progress
	ok     bool
	reason string // a substring of why when !ok
}

func runSteps(t *testing.T, steps []step) {
	t.Helper()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	w := newWatchdog(t0, progress{}, testLimits)
	for i, s := range steps {
		ok, why := w.check(t0.Add(s.at), s.p)
		if ok != s.ok {
			t.Fatalf("step %d at +%s (%+v): ok=%v (%q), want %v", i, s.at, s.p, ok, why, s.ok)
		}
		if !ok && !strings.Contains(why, s.reason) {
			t.Errorf("step %d: why %q, want it to say %q", i, why, s.reason)
		}
	}
}

// progressing returns the snapshot of a healthy pipeline after n checks.
func progressing(n int64) progress {
	return progress{Taken: 10 * n, Published: 10*n - 2, Pending: 2}
}

func TestWatchdogHealthyPipelinePings(t *testing.T) {
	var steps []step
	for i := int64(1); i <= 100; i++ {
		steps = append(steps, step{at: time.Duration(i) * 30 * time.Second, p: progressing(i), ok: true})
	}
	runSteps(t, steps)
}

// The "Done when": a pipeline that stops progressing stops the
// pings. Sampling stops first, then (another pipeline) publishing.
func TestWatchdogStalledPipelineStopsPings(t *testing.T) {
	t.Run("sampling stops", func(t *testing.T) {
		frozen := progress{Taken: 40, Published: 40}
		runSteps(t, []step{
			{at: 30 * time.Second, p: progress{Taken: 20, Published: 20}, ok: true},
			{at: 60 * time.Second, p: frozen, ok: true},
			// Nothing new: pending is 0 so the sender is fine, but no
			// reading for longer than Sampling.
			{at: 90 * time.Second, p: frozen, ok: true},
			{at: 120 * time.Second, p: frozen, ok: true}, // exactly the limit
			{at: 150 * time.Second, p: frozen, ok: false, reason: "sampling stalled"},
			{at: 180 * time.Second, p: frozen, ok: false, reason: "sampling stalled"},
			// It comes back: pings again.
			{at: 210 * time.Second, p: progress{Taken: 41, Published: 41}, ok: true},
		})
	})
	t.Run("publishing stops", func(t *testing.T) {
		// Readings keep coming and pile up; nothing is published and no
		// publish fails: the sender is wedged.
		runSteps(t, []step{
			{at: 30 * time.Second, p: progress{Taken: 10, Published: 10}, ok: true},
			{at: 60 * time.Second, p: progress{Taken: 20, Published: 10, Pending: 10}, ok: true},
			{at: 90 * time.Second, p: progress{Taken: 30, Published: 10, Pending: 20}, ok: true}, // the limit
			{at: 91 * time.Second, p: progress{Taken: 31, Published: 10, Pending: 21}, ok: false, reason: "publishing stalled: 21 readings pending"},
			{at: 120 * time.Second, p: progress{Taken: 40, Published: 10, Pending: 30}, ok: false, reason: "publishing stalled"},
			// A publish goes through: pings again.
			{at: 150 * time.Second, p: progress{Taken: 50, Published: 45, Pending: 5}, ok: true},
		})
	})
	t.Run("the writer blocks", func(t *testing.T) {
		// A writer stuck on the disk: nothing is counted as taken any
		// more, nothing new becomes pending, the sender drains what it
		// has and idles. Only sampling shows it.
		runSteps(t, []step{
			{at: 30 * time.Second, p: progress{Taken: 10, Published: 5, Pending: 5}, ok: true},
			{at: 60 * time.Second, p: progress{Taken: 10, Published: 10}, ok: true},
			{at: 90 * time.Second, p: progress{Taken: 10, Published: 10}, ok: true},
			{at: 91 * time.Second, p: progress{Taken: 10, Published: 10}, ok: false, reason: "sampling stalled"},
		})
	})
}

// A sender failing and backing off is alive: failed attempts count, and the
// long Retrying limit applies between them.
func TestWatchdogRetryingSenderIsAlive(t *testing.T) {
	p := func(n, errs int64) progress {
		return progress{Taken: 10 * n, Published: 10, PublishErrors: errs, Pending: 10*n - 10,
			LastPublishError: "publish: 403 ForbiddenException"}
	}
	var steps []step
	errs := int64(0)
	at := time.Duration(0)
	// Backoff 1, 2, 4, 8, 16, 30 minutes: a failed attempt each time.
	for _, wait := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
		for end := at + wait*time.Minute; at < end; {
			at += 30 * time.Second
			if at >= end {
				errs++
			}
			steps = append(steps, step{at: at, p: p(int64(at/(30*time.Second)), errs), ok: true})
		}
	}
	// Then the attempts stop: after Retrying without one, no pings.
	last := at
	for at < last+testLimits.Retrying {
		at += 30 * time.Second
		steps = append(steps, step{at: at, p: p(int64(at/(30*time.Second)), errs), ok: true})
	}
	at += 30 * time.Second
	steps = append(steps, step{at: at, p: p(int64(at/(30*time.Second)), errs), ok: false, reason: "publishing stalled"})
	runSteps(t, steps)
}

// A failing sensor retried with backoff up to 5 minutes is not a wedged
// agent: read errors count as sampling, with the longer limit.
func TestWatchdogFailingSensorIsAlive(t *testing.T) {
	var steps []step
	var readErrs int64
	var lastErr time.Duration
	for i := int64(1); i <= 40; i++ {
		at := time.Duration(i) * 30 * time.Second
		if i%10 == 1 { // an attempt every 5 minutes, failing
			readErrs++
			lastErr = at
		}
		steps = append(steps, step{at: at, p: progress{Taken: 3, Published: 3, ReadErrors: readErrs}, ok: true})
	}
	// The retries stop: the longer limit still runs out.
	frozen := progress{Taken: 3, Published: 3, ReadErrors: readErrs}
	steps = append(steps,
		step{at: lastErr + testLimits.SamplingFailing, p: frozen, ok: true},
		step{at: lastErr + testLimits.SamplingFailing + time.Second, p: frozen, ok: false, reason: "sampling stalled"})
	runSteps(t, steps)
}

func TestWatchdogLimitsFor(t *testing.T) {
	d := func(s string) config.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return config.Duration(v)
	}
	cfg := config.Defaults()
	cfg.Sensors = []config.Sensor{
		{Name: "fast", Driver: "sim", Interval: d("1s"), Timeout: d("1s")},
		{Name: "slow", Driver: "sim", Interval: d("10m"), Timeout: d("10s")},
	}
	got := watchdogLimitsFor(&cfg, 30*time.Second)
	want := watchdogLimits{
		// slow: 10m interval + 10s open + 10s read; slack 30s + 10s.
		Sampling:        10*time.Minute + 20*time.Second + 40*time.Second,
		SamplingFailing: 10*time.Minute + 20*time.Second + 40*time.Second,
		// flush 10s + two 10s requests + slack.
		Sending:  10*time.Second + 20*time.Second + 40*time.Second,
		Retrying: senderMaxBackoff + 20*time.Second + 40*time.Second,
	}
	if got != want {
		t.Errorf("limits:\n got %+v\nwant %+v", got, want)
	}
	cfg.Sensors = cfg.Sensors[:1]
	got = watchdogLimitsFor(&cfg, 30*time.Second)
	if want := 1*time.Second + 10*time.Second + 1*time.Second + 40*time.Second; got.Sampling != want {
		t.Errorf("fast sensor only: Sampling %s, want %s", got.Sampling, want)
	}
	if want := 5*time.Minute + 11*time.Second + 40*time.Second; got.SamplingFailing != want {
		t.Errorf("fast sensor only: SamplingFailing %s, want %s (the scheduler's 5 minute backoff)", got.SamplingFailing, want)
	}
}

func TestStatusText(t *testing.T) {
	at := time.Date(2026, 11, 26, 15, 6, 13, 0, time.UTC)
	for _, tc := range []struct {
		p    progress
		want string
	}{
		{progress{Taken: 3, Pending: 3}, "readings taken 3, published 0, pending 3; nothing published yet"},
		{progress{Taken: 1234, Published: 1230, Pending: 4, LastPublish: at}, "readings taken 1234, published 1230, pending 4; last publish 15:06:13Z ok"},
		{progress{Taken: 50, Published: 20, Pending: 30, LastPublish: at, LastPublishError: "503 ServiceUnavailableException"},
			"readings taken 50, published 20, pending 30; publish failing (last success 15:06:13Z): 503 ServiceUnavailableException"},
	} {
		if got := statusText(tc.p); got != tc.want {
			t.Errorf("statusText(%+v)\n got %q\nwant %q", tc.p, got, tc.want)
		}
	}
}

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
		snapshot: func() progress {
			return progress{Taken: taken.Load(), Published: published.Load()}
		},
		now:         time.Now,
		statusEvery: 50 * time.Millisecond, watchdogEvery: 20 * time.Millisecond,
		limits: watchdogLimits{Sampling: 150 * time.Millisecond, SamplingFailing: time.Second,
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
