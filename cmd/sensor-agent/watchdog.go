package main

// The systemd watchdog (WatchdogSec= in the unit). WATCHDOG=1 is sent only
// while agent.Watchdog says the pipeline makes progress (agent/progress.go),
// so a wedged agent stops pinging and systemd restarts it.

import (
	"context"
	"log/slog"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/agent/clock"
)

// supervisor sends the agent's state to systemd: STATUS= every
// statusEvery, WATCHDOG=1 every watchdogEvery (0 = watchdog off) while
// check says the pipeline progresses.
type supervisor struct {
	sd            *notifier
	log           *slog.Logger
	snapshot      func() agent.Progress
	now           func() time.Time
	statusEvery   time.Duration
	watchdogEvery time.Duration
	limits        agent.ProgressLimits

	notifyFailing bool
}

// run returns when ctx ends. The caller has sent READY=1.
func (s *supervisor) run(ctx context.Context) {
	wd := agent.NewWatchdog(s.now(), s.snapshot(), s.limits)
	s.notify(sdStatus(wd.Last().StatusText()))
	// Aligned to the wall clock, so the pings share the wake-ups of the
	// readings.
	status := clock.NewTicker(s.statusEvery)
	defer status.Stop()
	var ping <-chan time.Time
	next := func() {}
	if s.watchdogEvery > 0 {
		s.notify(sdWatchdog)
		t := clock.NewTicker(s.watchdogEvery)
		defer t.Stop()
		ping, next = t.C, t.Next
	}
	stalled := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-status.C:
			status.Next()
			p := s.snapshot()
			text := p.StatusText()
			if stalled != "" {
				text = "STALLED, " + stalled + "; " + text
			}
			s.notify(sdStatus(text))
		case <-ping:
			next()
			ok, why := wd.Check(s.now(), s.snapshot())
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
