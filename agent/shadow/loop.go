package shadow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/agent/clock"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// Source is the running agent: what is reported, and its publisher's
// connection, which shadow requests share.
type Source interface {
	Snapshot() agent.Snapshot
	PublishMetrics() agent.PublishMetrics
	Shadow(ctx context.Context, method, thing, name string, body []byte) (publisher.ShadowReply, error)
}

// Loop reports the agent's state and polls desired state. It outlives
// config reloads: Source returns the agent running now (nil while one
// replaces another).
type Loop struct {
	Thing, Name string
	ReportEvery time.Duration // at most this often, unless health changes
	PollEvery   time.Duration
	// CheckEvery is how often health is looked at, to report a change at
	// once (default 10s or the shorter interval, on the wall clock's grid
	// like the status line).
	CheckEvery time.Duration
	Log        *slog.Logger
	Source     func() Source
	Facts      func() Facts
	// Desired hands over the shadow's desired state (nil: it has none)
	// when it differs from the last handed over; version is the shadow's.
	Desired func(desired map[string]any, version int64)

	prev      map[string]any // the reported state the shadow holds
	synced    bool           // prev is known: a GET succeeded
	seen      map[string]any // the desired state last handed over
	health    string
	lastSent  time.Time
	pollDue   time.Time
	backoff   time.Duration // between failed GETs
	retryAt   time.Time     // no report before, after a failed one
	rbackoff  time.Duration
	failing   bool
	remoteDue bool // remote configuration changed: report it now
	lastSrc   Source
}

// Run runs until ctx ends.
func (l *Loop) Run(ctx context.Context) {
	if l.CheckEvery <= 0 {
		l.CheckEvery = min(10*time.Second, l.ReportEvery, l.PollEvery)
	}
	l.seen = l.Facts().Remote.Applied // what the service started with
	tick := clock.NewTicker(l.CheckEvery)
	defer tick.Stop()
	for {
		l.step(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			tick.Next()
		}
	}
}

// step polls when due, then reports when due.
func (l *Loop) step(ctx context.Context, now time.Time) {
	src := l.Source()
	if src == nil {
		return
	}
	if src != l.lastSrc {
		// A new agent (start, or a reload: new settings): report it now.
		l.lastSrc, l.remoteDue = src, true
	}
	if !now.Before(l.pollDue) {
		if err := l.poll(ctx, src); err != nil {
			l.fail("shadow get", err)
			l.backoff = l.grow(l.backoff, l.PollEvery)
			l.pollDue = now.Add(l.backoff)
		} else {
			l.backoff, l.pollDue = 0, now.Add(l.PollEvery)
		}
	}
	if !l.synced {
		return
	}
	snap := src.Snapshot()
	h := Healthy(snap)
	if h == l.health && !l.remoteDue && now.Sub(l.lastSent) < l.ReportEvery || now.Before(l.retryAt) {
		return
	}
	if err := l.report(ctx, src, snap); err != nil {
		l.fail("shadow report", err)
		l.rbackoff = l.grow(l.rbackoff, l.ReportEvery)
		l.retryAt = now.Add(l.rbackoff)
		if se, ok := errors.AsType[*publisher.ShadowError](err); ok && se.Status == http.StatusConflict {
			// Reports carry no version, so AWS has no cause for this; if
			// it comes, learn the shadow's state again before the next.
			l.synced, l.pollDue = false, now
		}
		return
	}
	l.health, l.lastSent, l.remoteDue, l.rbackoff = h, now, false, 0
}

// grow is the wait after another failure: doubled, from one check to at
// most limit.
func (l *Loop) grow(wait, limit time.Duration) time.Duration {
	return min(max(2*wait, l.CheckEvery), limit)
}

// fail logs a failed request: a warning when a streak starts, then at
// debug level, so an offline device does not fill its journal.
func (l *Loop) fail(what string, err error) {
	if l.failing {
		l.Log.Debug(what+" failed again", "err", err)
		return
	}
	l.failing = true
	l.Log.Warn(what+" failed; retrying (publishing goes on)", "err", err)
}

// shadowDoc is the part of a GET answer the loop reads.
type shadowDoc struct {
	State struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	} `json:"state"`
	Version int64 `json:"version"`
}

func (l *Loop) poll(ctx context.Context, src Source) error {
	var doc shadowDoc
	rep, err := src.Shadow(ctx, http.MethodGet, l.Thing, l.Name, nil)
	var se *publisher.ShadowError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		// No shadow yet (or deleted): no desired state, nothing reported.
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(rep.Body, &doc); err != nil {
			return fmt.Errorf("shadow get %s/%s: the answer is not a shadow document: %w", l.Thing, l.Name, err)
		}
	}
	if l.failing {
		l.Log.Info("shadow reachable again")
		l.failing = false
	}
	if !l.synced {
		l.prev, l.synced = doc.State.Reported, true
	}
	desired := doc.State.Desired
	if !equal(nilIfEmptyMap(desired), nilIfEmptyMap(l.seen)) {
		l.seen = desired
		l.Desired(desired, doc.Version)
		l.remoteDue = true
	}
	return nil
}

func nilIfEmptyMap(m map[string]any) any {
	if len(m) == 0 {
		return nil
	}
	return m
}

// report sends what changed since the state the shadow holds.
func (l *Loop) report(ctx context.Context, src Source, snap agent.Snapshot) error {
	cur := Document(snap, src.PublishMetrics(), l.Facts())
	d := Diff(l.prev, cur)
	if len(d) == 0 {
		return nil
	}
	var body bytes.Buffer
	if err := json.NewEncoder(&body).Encode(map[string]any{"state": map[string]any{"reported": d}}); err != nil {
		return fmt.Errorf("shadow report: %w", err)
	}
	if _, err := src.Shadow(ctx, http.MethodPost, l.Thing, l.Name, body.Bytes()); err != nil {
		return err
	}
	l.prev = cur
	l.Log.Debug("shadow reported", "bytes", body.Len())
	return nil
}
