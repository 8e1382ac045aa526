package scheduler

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/sensor-agent/sensor-agent/sensors"
)

// dispatcher keeps every sensor's time with one timer, hands due sensors
// to their workers and turns what comes back into samples and statuses.
type dispatcher struct {
	ctx     context.Context
	opts    Options
	emit    func([]Sample)
	status  func(Status)
	runners []*runner
	results chan outcome
	group   []Sample // samples of this wake-up, emitted together
	// groupSince is when the group's first sample came; it waits at most
	// linger for the rest.
	groupSince time.Time
	linger     time.Duration
	active     int // runners not done
	now        func() time.Time
}

func (d *dispatcher) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer d.shutdown()
	defer func() {
		if len(d.group) > 0 {
			d.emit(d.group) // taken: stored, even at shutdown
		}
	}()
	for d.active > 0 {
		// What has come back counts before any deadline is judged: a
		// busy process may see a read's result only after its deadline.
		d.drain()
		now := d.now()
		d.expire(now)
		d.flushDue(now)
		d.dispatch(now)
		if d.active == 0 {
			return
		}
		timer.Reset(d.nextWake().Sub(d.now()))
		select {
		case <-d.ctx.Done():
			return
		case o := <-d.results:
			d.collect(o, d.now())
		case <-timer.C:
		}
	}
}

// nextWake is the earliest deadline of a job in flight or due time of an
// idle sensor.
func (d *dispatcher) nextWake() time.Time {
	var t time.Time
	for _, r := range d.runners {
		w := r.next
		switch {
		case r.done:
			continue
		case r.busy && !r.late:
			w = r.deadline
		}
		if t.IsZero() || w.Before(t) {
			t = w
		}
	}
	if len(d.group) > 0 {
		if g := d.groupSince.Add(d.linger); g.Before(t) {
			t = g
		}
	}
	return t
}

// dispatch starts a job for every idle sensor that is due. A sensor whose
// abandoned read still runs is due too: that is a failure of its own.
func (d *dispatcher) dispatch(now time.Time) {
	for _, r := range d.runners {
		if r.done || r.busy && !r.late {
			continue
		}
		if wait := r.next.Sub(now); wait > max(d.opts.MaxBackoff, r.src.Interval) {
			// The wall clock was set back: keep sampling rather than
			// wait for the old time to come again.
			r.next, r.grid = now, now.Truncate(r.src.Interval)
		}
		if now.Before(r.next) {
			continue
		}
		if r.busy {
			d.fail(r, now, fmt.Errorf("previous read still running after its %s timeout (device or bus hung?)", r.src.Timeout))
			continue
		}
		d.start(r, now)
	}
}

func (d *dispatcher) start(r *runner, now time.Time) {
	if r.rctx == nil || r.rctx.Err() != nil {
		r.rctx, r.rcancel = context.WithCancel(d.ctx)
	}
	j := job{ctx: r.rctx, dev: r.dev, openTimeout: max(r.src.Timeout, MinOpenTimeout)}
	r.busy, r.opening = true, r.dev == nil
	r.deadline = now.Add(r.src.Timeout)
	if r.opening {
		r.deadline = now.Add(j.openTimeout)
	}
	r.jobs <- j // never blocks: the worker is idle
}

// expire abandons the jobs in flight past their deadline.
func (d *dispatcher) expire(now time.Time) {
	for _, r := range d.runners {
		if !r.busy || r.late || now.Before(r.deadline) {
			continue
		}
		r.late = true
		r.rcancel() // a driver waiting on the context gives up
		if r.opening {
			d.fail(r, now, fmt.Errorf("open: timed out after %s", max(r.src.Timeout, MinOpenTimeout)))
			continue
		}
		d.fail(r, now, fmt.Errorf("read: timed out after %s", r.src.Timeout))
	}
}

// collect handles o and whatever else has arrived. The samples go out
// as one group once no job in flight may still join it, or linger after
// the first one at the latest: the sensors read in one wake-up are stored
// with one write, and a slow sensor does not hold back the others.
func (d *dispatcher) collect(o outcome, now time.Time) {
	d.handle(o)
	d.drain()
	if d.waiting() {
		// Let the other workers of this wake-up finish first (on one
		// CPU they all do): arming the linger timer and moving it back
		// costs a wake-up of its own.
		runtime.Gosched()
		d.drain()
	}
	d.flushDue(now)
}

// flushDue emits the group when it is complete or has waited long enough.
func (d *dispatcher) flushDue(now time.Time) {
	if len(d.group) == 0 || d.waiting() && now.Before(d.groupSince.Add(d.linger)) {
		return
	}
	d.emit(d.group)
	d.group, d.groupSince = nil, time.Time{}
}

// drain handles the outcomes already sent, and says whether there were.
func (d *dispatcher) drain() bool {
	got := false
	for {
		select {
		case o := <-d.results:
			d.handle(o)
			got = true
		default:
			return got
		}
	}
}

// waiting says whether a job in flight may still return in time.
func (d *dispatcher) waiting() bool {
	for _, r := range d.runners {
		if r.busy && !r.late {
			return true
		}
	}
	return false
}

func (d *dispatcher) handle(o outcome) {
	r := o.r
	r.busy = false
	if o.dev != nil {
		r.dev = o.dev
	}
	if r.late {
		r.late = false // its deadline passed: the value is stale
		return
	}
	now := d.now()
	switch {
	case errors.Is(o.err, sensors.ErrDone):
		d.finish(r)
	case o.err != nil:
		d.fail(r, now, o.err)
	case r.opening:
		d.start(r, now) // opened: read at once
	default:
		if len(d.group) == 0 {
			d.groupSince = now
		}
		d.group = append(d.group, Sample{Sensor: r.src.Name, Driver: r.src.Driver, Time: o.start, Values: o.v})
		if r.st.ConsecutiveErrors > 0 {
			r.src.Logger.Info("sensor recovered", "after_errors", r.st.ConsecutiveErrors)
		}
		changed := r.st.ConsecutiveErrors > 0 || r.st.LastSuccess.IsZero()
		r.st.ConsecutiveErrors = 0
		r.st.LastSuccess = o.start
		if changed {
			d.status(r.st)
		}
		r.advance(now)
	}
}

func (d *dispatcher) fail(r *runner, now time.Time, err error) {
	r.st.ConsecutiveErrors++
	r.st.LastError = err
	d.status(r.st)
	wait := r.backoff(r.st.ConsecutiveErrors, d.opts.MaxBackoff)
	r.src.Logger.Warn("sensor error", "err", err, "consecutive", r.st.ConsecutiveErrors, "retry_in", wait.String())
	if r.st.ConsecutiveErrors%d.opts.ReopenAfter == 0 && r.dev != nil && !r.busy {
		r.src.Logger.Warn("re-opening sensor after repeated errors", "consecutive", r.st.ConsecutiveErrors)
		r.closeDev()
	}
	r.next = now.Add(wait)
}

// finish retires a sensor that has no more readings.
func (d *dispatcher) finish(r *runner) {
	r.done = true
	r.st.Done = true
	d.status(r.st)
	r.src.Logger.Info("sensor finished: no more readings")
	r.closeDev()
	close(r.jobs)
	d.active--
}

// shutdown stops the workers and closes the devices no read is using. A
// worker stuck in a read ends when the read returns.
func (d *dispatcher) shutdown() {
	for _, r := range d.runners {
		if r.done {
			continue
		}
		r.closeDev()
		close(r.jobs)
		if r.rcancel != nil {
			r.rcancel()
		}
	}
}
