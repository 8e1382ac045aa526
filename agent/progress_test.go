package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/config"
)

// testLimits are round numbers for driving watchdog.check by hand.
var testLimits = ProgressLimits{
	Sampling:        time.Minute,
	SamplingFailing: 6 * time.Minute,
	Sending:         time.Minute,
	Retrying:        40 * time.Minute,
}

// step is one snapshot the test feeds the watchdog, at an offset from t0.
type step struct {
	at     time.Duration
	p      Progress
	ok     bool
	reason string // a substring of why when !ok
}

func runSteps(t *testing.T, steps []step) {
	t.Helper()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	w := NewWatchdog(t0, Progress{}, testLimits)
	for i, s := range steps {
		ok, why := w.Check(t0.Add(s.at), s.p)
		if ok != s.ok {
			t.Fatalf("step %d at +%s (%+v): ok=%v (%q), want %v", i, s.at, s.p, ok, why, s.ok)
		}
		if !ok && !strings.Contains(why, s.reason) {
			t.Errorf("step %d: why %q, want it to say %q", i, why, s.reason)
		}
	}
}

// progressing returns the snapshot of a healthy pipeline after n checks.
func progressing(n int64) Progress {
	return Progress{Taken: 10 * n, Published: 10*n - 2, Pending: 2}
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
		frozen := Progress{Taken: 40, Published: 40}
		runSteps(t, []step{
			{at: 30 * time.Second, p: Progress{Taken: 20, Published: 20}, ok: true},
			{at: 60 * time.Second, p: frozen, ok: true},
			// Nothing new: pending is 0 so the sender is fine, but no
			// reading for longer than Sampling.
			{at: 90 * time.Second, p: frozen, ok: true},
			{at: 120 * time.Second, p: frozen, ok: true}, // exactly the limit
			{at: 150 * time.Second, p: frozen, ok: false, reason: "sampling stalled"},
			{at: 180 * time.Second, p: frozen, ok: false, reason: "sampling stalled"},
			// It comes back: pings again.
			{at: 210 * time.Second, p: Progress{Taken: 41, Published: 41}, ok: true},
		})
	})
	t.Run("publishing stops", func(t *testing.T) {
		// Readings keep coming and pile up; nothing is published and no
		// publish fails: the sender is wedged.
		runSteps(t, []step{
			{at: 30 * time.Second, p: Progress{Taken: 10, Published: 10}, ok: true},
			{at: 60 * time.Second, p: Progress{Taken: 20, Published: 10, Pending: 10}, ok: true},
			{at: 90 * time.Second, p: Progress{Taken: 30, Published: 10, Pending: 20}, ok: true}, // the limit
			{at: 91 * time.Second, p: Progress{Taken: 31, Published: 10, Pending: 21}, ok: false, reason: "publishing stalled: 21 readings pending"},
			{at: 120 * time.Second, p: Progress{Taken: 40, Published: 10, Pending: 30}, ok: false, reason: "publishing stalled"},
			// A publish goes through: pings again.
			{at: 150 * time.Second, p: Progress{Taken: 50, Published: 45, Pending: 5}, ok: true},
		})
	})
	t.Run("the writer blocks", func(t *testing.T) {
		// A writer stuck on the disk: nothing is counted as taken any
		// more, nothing new becomes pending, the sender drains what it
		// has and idles. Only sampling shows it.
		runSteps(t, []step{
			{at: 30 * time.Second, p: Progress{Taken: 10, Published: 5, Pending: 5}, ok: true},
			{at: 60 * time.Second, p: Progress{Taken: 10, Published: 10}, ok: true},
			{at: 90 * time.Second, p: Progress{Taken: 10, Published: 10}, ok: true},
			{at: 91 * time.Second, p: Progress{Taken: 10, Published: 10}, ok: false, reason: "sampling stalled"},
		})
	})
}

// A sender failing and backing off is alive: failed attempts count, and the
// long Retrying limit applies between them.
func TestWatchdogRetryingSenderIsAlive(t *testing.T) {
	p := func(n, errs int64) Progress {
		return Progress{Taken: 10 * n, Published: 10, PublishErrors: errs, Pending: 10*n - 10,
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
		steps = append(steps, step{at: at, p: Progress{Taken: 3, Published: 3, ReadErrors: readErrs}, ok: true})
	}
	// The retries stop: the longer limit still runs out.
	frozen := Progress{Taken: 3, Published: 3, ReadErrors: readErrs}
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
	got := ProgressLimitsFor(&cfg, 30*time.Second)
	want := ProgressLimits{
		// slow: 10m interval + 10s open + 10s read; slack 30s + 10s.
		Sampling:        10*time.Minute + 20*time.Second + 40*time.Second,
		SamplingFailing: 10*time.Minute + 20*time.Second + 40*time.Second,
		// flush 10s + two 10s requests + slack.
		Sending:  10*time.Second + 20*time.Second + 40*time.Second,
		Retrying: SenderMaxWait() + 20*time.Second + 40*time.Second,
	}
	if got != want {
		t.Errorf("limits:\n got %+v\nwant %+v", got, want)
	}
	cfg.Sensors = cfg.Sensors[:1]
	got = ProgressLimitsFor(&cfg, 30*time.Second)
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
		p    Progress
		want string
	}{
		{Progress{Taken: 3, Pending: 3}, "readings taken 3, published 0, pending 3; nothing published yet"},
		{Progress{Taken: 1234, Published: 1230, Pending: 4, LastPublish: at}, "readings taken 1234, published 1230, pending 4; last publish 15:06:13Z ok"},
		{Progress{Taken: 50, Published: 20, Pending: 30, LastPublish: at, LastPublishError: "503 ServiceUnavailableException"},
			"readings taken 50, published 20, pending 30; publish failing (last success 15:06:13Z): 503 ServiceUnavailableException"},
	} {
		if got := tc.p.StatusText(); got != tc.want {
			t.Errorf("StatusText(%+v)\n got %q\nwant %q", tc.p, got, tc.want)
		}
	}
}
