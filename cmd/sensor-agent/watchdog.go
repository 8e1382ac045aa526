package main

// The systemd watchdog (WatchdogSec= in the unit). WATCHDOG=1 is sent only
// while the pipeline makes progress, so a wedged agent (a writer stuck on
// the disk, a dead scheduler, a sender that stopped trying) stops pinging
// and systemd restarts it. Progress is judged by a pure function over
// successive snapshots of the agent's counters (watchdog.check), with the
// time passed in, so tests drive it without a clock.
//
// Progress means both:
//   - sampling: a reading was taken or a read failed (a failing sensor is
//     a sensor problem, retried with backoff, not a wedged agent) within
//     the longest a sensor may take between attempts;
//   - sending: nothing is pending, or a publish was acknowledged, or a
//     publish failed (the sender is alive and retrying with backoff),
//     within the longest the sender may wait between attempts.

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/agent/scheduler"
)

// progress is one snapshot of the agent's counters.
type progress struct {
	Taken, ReadErrors        int64
	Published, PublishErrors int64
	Pending                  int64
	LastPublish              time.Time // last acknowledged publish
	LastPublishError         string    // "" when the last attempt succeeded
}

func progressOf(st agent.Stats, pending int64) progress {
	return progress{
		Taken: st.ReadingsTaken, ReadErrors: st.ReadErrors,
		Published: st.ReadingsPublished, PublishErrors: st.PublishErrors,
		Pending: pending, LastPublish: st.LastPublish, LastPublishError: st.LastPublishError,
	}
}

// watchdogLimits are the longest each part of the pipeline may go without
// progress before the agent counts as wedged.
type watchdogLimits struct {
	// Sampling: between two sampling events while every sensor reads
	// fine: the longest interval, plus opening and reading the sensor.
	Sampling time.Duration
	// SamplingFailing replaces Sampling while read errors are recent:
	// a failing sensor is retried with backoff up to 5 minutes.
	SamplingFailing time.Duration
	// Sending: with readings pending, between the last acknowledged
	// publish and the next attempt (flush interval plus a request).
	Sending time.Duration
	// Retrying replaces Sending after a failed publish: the sender's
	// longest backoff (30 minutes, for 401/403) plus a request.
	Retrying time.Duration
}

// The sender's longest backoff (agent/sender.go: 30 minutes for 401/403,
// with 20% jitter) and the scheduler's open timeout floor.
const (
	senderMaxBackoff = 36 * time.Minute
	sensorOpenFloor  = 10 * time.Second
)

// watchdogLimitsFor derives the limits from the config. period is how often
// the watchdog looks; it is added as slack, with 10 s more.
func watchdogLimitsFor(cfg *config.Config, period time.Duration) watchdogLimits {
	var healthy, failing time.Duration
	for _, s := range cfg.Sensors {
		iv, to := s.Interval.D(), s.Timeout.D()
		open := max(to, sensorOpenFloor) // scheduler: opening may take this long
		healthy = max(healthy, iv+open+to)
		failing = max(failing, max(iv, scheduler.DefaultMaxBackoff)+open+to)
	}
	slack := period + 10*time.Second
	// A request may be tried twice (a stale kept-alive connection).
	request := 2 * cfg.Endpoint.Timeout.D()
	return watchdogLimits{
		Sampling:        healthy + slack,
		SamplingFailing: failing + slack,
		Sending:         cfg.Publish.FlushInterval.D() + request + slack,
		Retrying:        senderMaxBackoff + request + slack,
	}
}

// watchdog tracks progress across snapshots. Not safe for concurrent use.
type watchdog struct {
	limits watchdogLimits
	prev   progress

	lastSample    time.Time // a reading taken or a read error
	lastReadError time.Time
	lastSend      time.Time // nothing pending, or a publish attempt ended
	retrying      bool      // the last publish attempt failed
}

// newWatchdog starts tracking at now, from the snapshot first.
func newWatchdog(now time.Time, first progress, l watchdogLimits) *watchdog {
	return &watchdog{limits: l, prev: first, lastSample: now, lastSend: now,
		retrying: first.LastPublishError != ""}
}

// check takes the next snapshot and reports whether the pipeline is making
// progress, and if not, why.
func (w *watchdog) check(now time.Time, p progress) (ok bool, why string) {
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

// statusText is the STATUS= shown by `systemctl status`.
func statusText(p progress) string {
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

// supervisor sends the agent's state to systemd: STATUS= every
// statusEvery, WATCHDOG=1 every watchdogEvery (0 = watchdog off) while
// check says the pipeline progresses.
type supervisor struct {
	sd            *notifier
	log           *slog.Logger
	snapshot      func() progress
	now           func() time.Time
	statusEvery   time.Duration
	watchdogEvery time.Duration
	limits        watchdogLimits

	notifyFailing bool
}

// run returns when ctx ends. The caller has sent READY=1.
func (s *supervisor) run(ctx context.Context) {
	wd := newWatchdog(s.now(), s.snapshot(), s.limits)
	s.notify(sdStatus(statusText(wd.prev)))
	status := time.NewTicker(s.statusEvery)
	defer status.Stop()
	var ping <-chan time.Time
	if s.watchdogEvery > 0 {
		s.notify(sdWatchdog)
		t := time.NewTicker(s.watchdogEvery)
		defer t.Stop()
		ping = t.C
	}
	stalled := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-status.C:
			p := s.snapshot()
			text := statusText(p)
			if stalled != "" {
				text = "STALLED, " + stalled + "; " + text
			}
			s.notify(sdStatus(text))
		case <-ping:
			ok, why := wd.check(s.now(), s.snapshot())
			switch {
			case ok && stalled != "":
				s.log.Warn("watchdog: the pipeline progresses again; pinging systemd again")
				stalled = ""
			case !ok && stalled == "":
				s.log.Error("watchdog: the pipeline is stalled; no more pings, systemd restarts the service after WatchdogSec", "why", why)
				stalled = why
				s.notify(sdStatus("STALLED, " + why))
			}
			if ok {
				s.notify(sdWatchdog)
			}
		}
	}
}

func (s *supervisor) notify(lines ...string) {
	err := s.sd.send(lines...)
	if err != nil && !s.notifyFailing {
		s.log.Warn("telling systemd", "err", err) // once until it works again
	}
	s.notifyFailing = err != nil
}
