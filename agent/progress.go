package agent

// Progress: whether the pipeline is moving, judged from successive
// snapshots of the agent's counters with the time passed in, so tests drive
// it without a clock. The systemd watchdog (cmd/sensor-agent) pings only
// while Watchdog.Check says so, and a wedged agent (a writer stuck on the
// disk, a dead scheduler, a sender that stopped trying) is restarted.
//
// Progress means both:
//   - sampling: a reading was taken or a read failed (a failing sensor is
//     a sensor problem, retried with backoff, not a wedged agent) within
//     the longest a sensor may take between attempts;
//   - sending: nothing is pending, or a publish was acknowledged, or a
//     publish failed (the sender is alive and retrying with backoff),
//     within the longest the sender may wait between attempts.

import (
	"fmt"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/agent/scheduler"
)

// Progress is one snapshot of the agent's counters.
type Progress struct {
	Taken, ReadErrors        int64
	Published, PublishErrors int64
	Pending                  int64
	LastPublish              time.Time // last acknowledged publish
	LastPublishError         string    // "" when the last attempt succeeded
}

// Progress returns the agent's counters now.
func (a *Agent) Progress() Progress {
	st := a.Stats()
	return Progress{
		Taken: st.ReadingsTaken, ReadErrors: st.ReadErrors,
		Published: st.ReadingsPublished, PublishErrors: st.PublishErrors,
		Pending: a.Pending(), LastPublish: st.LastPublish, LastPublishError: st.LastPublishError,
	}
}

// ProgressLimits are the longest each part of the pipeline may go without
// progress before the agent counts as wedged.
type ProgressLimits struct {
	// Sampling: between two sampling events while every sensor reads
	// fine: the longest interval, plus opening and reading the sensor.
	Sampling time.Duration
	// SamplingFailing replaces Sampling while read errors are recent:
	// a failing sensor is retried with the scheduler's backoff.
	SamplingFailing time.Duration
	// Sending: with readings pending, between the last acknowledged
	// publish and the next attempt (flush interval plus a request).
	Sending time.Duration
	// Retrying replaces Sending after a failed publish: the sender's
	// longest backoff plus a request.
	Retrying time.Duration
}

// SenderMaxWait is the longest the sender waits between two attempts: the
// largest of its backoffs' caps (jitter only shortens a delay).
func SenderMaxWait() time.Duration {
	return max(retryBackoff.Max, busyBackoff.Max, authBackoff.Max)
}

// ProgressLimitsFor derives the limits from the config. period is how often
// the caller looks; it is added as slack, with 10 s more.
func ProgressLimitsFor(cfg *config.Config, period time.Duration) ProgressLimits {
	var healthy, failing time.Duration
	for _, s := range cfg.Sensors {
		iv, to := s.Interval.D(), s.Timeout.D()
		open := max(to, scheduler.MinOpenTimeout) // opening may take this long
		healthy = max(healthy, iv+open+to)
		failing = max(failing, max(iv, scheduler.DefaultMaxBackoff)+open+to)
	}
	slack := period + 10*time.Second
	// A request may be tried twice (a stale kept-alive connection).
	request := 2 * cfg.Endpoint.Timeout.D()
	return ProgressLimits{
		Sampling:        healthy + slack,
		SamplingFailing: failing + slack,
		Sending:         cfg.Publish.FlushInterval.D() + request + slack,
		Retrying:        SenderMaxWait() + request + slack,
	}
}

// Watchdog tracks progress across snapshots. Not safe for concurrent use.
type Watchdog struct {
	limits ProgressLimits
	prev   Progress

	lastSample    time.Time // a reading taken or a read error
	lastReadError time.Time
	lastSend      time.Time // nothing pending, or a publish attempt ended
	retrying      bool      // the last publish attempt failed
}

// NewWatchdog starts tracking at now, from the snapshot first.
func NewWatchdog(now time.Time, first Progress, l ProgressLimits) *Watchdog {
	return &Watchdog{limits: l, prev: first, lastSample: now, lastSend: now,
		retrying: first.LastPublishError != ""}
}

// Last is the latest snapshot Check was given.
func (w *Watchdog) Last() Progress { return w.prev }

// Check takes the next snapshot and reports whether the pipeline is making
// progress, and if not, why.
func (w *Watchdog) Check(now time.Time, p Progress) (ok bool, why string) {
	if p.Taken > w.prev.Taken || p.ReadErrors > w.prev.ReadErrors {
		w.lastSample = now
	}
	if p.ReadErrors > w.prev.ReadErrors {
		w.lastReadError = now
	}
	if p.Pending == 0 || p.Published > w.prev.Published || p.PublishErrors > w.prev.PublishErrors {
		w.lastSend = now
		w.retrying = p.Pending > 0 && p.LastPublishError != ""
	}
	w.prev = p

	sampling := w.limits.Sampling
	if !w.lastReadError.IsZero() && now.Sub(w.lastReadError) <= w.limits.SamplingFailing {
		sampling = w.limits.SamplingFailing
	}
	if d := now.Sub(w.lastSample); d > sampling {
		return false, fmt.Sprintf("sampling stalled: no reading taken and no read error for %s (limit %s)",
			d.Round(time.Second), sampling)
	}
	sending := w.limits.Sending
	if w.retrying {
		sending = w.limits.Retrying
	}
	if d := now.Sub(w.lastSend); d > sending {
		return false, fmt.Sprintf("publishing stalled: %d readings pending and no publish attempt ended for %s (limit %s)",
			p.Pending, d.Round(time.Second), sending)
	}
	return true, ""
}

// StatusText is a one-line summary (systemd's STATUS=).
func (p Progress) StatusText() string {
	s := fmt.Sprintf("readings taken %d, published %d, pending %d; ", p.Taken, p.Published, p.Pending)
	last := "never"
	if !p.LastPublish.IsZero() {
		last = p.LastPublish.UTC().Format("15:04:05Z")
	}
	if p.LastPublishError != "" {
		return s + fmt.Sprintf("publish failing (last success %s): %s", last, p.LastPublishError)
	}
	if p.LastPublish.IsZero() {
		return s + "nothing published yet"
	}
	return s + "last publish " + last + " ok"
}
