package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/sensor-agent/sensor-agent/sensors"
)

// job asks a worker to read its device, or to open it when dev is nil;
// each has its own deadline.
type job struct {
	ctx         context.Context // cancelled when the job's deadline passes
	dev         sensors.Sensor
	openTimeout time.Duration
}

// outcome is a job's result, sent back to the dispatcher.
type outcome struct {
	r     *runner
	dev   sensors.Sensor // opened by this job
	v     sensors.Values
	err   error // already names the stage (open, read)
	start time.Time
}

// runner is one sensor's state; only the dispatcher's goroutine touches
// it, except src, which is fixed.
type runner struct {
	src  Source
	jobs chan job // to the worker; closed when the sensor is done

	dev      sensors.Sensor
	busy     bool      // a job is with the worker
	late     bool      // that job outlived its deadline: its result is stale
	opening  bool      // that job opens the device
	deadline time.Time // of the job in flight
	next     time.Time // when the next job is due
	grid     time.Time // the interval's grid, which next keeps to
	rctx     context.Context
	rcancel  context.CancelFunc
	st       Status
	done     bool
}

// work runs the jobs of one sensor until its channel is closed.
func (r *runner) work(results chan<- outcome, now func() time.Time) {
	for j := range r.jobs {
		results <- r.do(j, now)
	}
}

func (r *runner) do(j job, now func() time.Time) outcome {
	o := outcome{r: r}
	if j.dev == nil {
		octx, cancel := context.WithTimeout(j.ctx, j.openTimeout)
		o.dev, o.err = r.src.Open(octx)
		cancel()
		if o.err != nil {
			o.err = fmt.Errorf("open: %w", o.err)
		}
		return o
	}
	o.start = now()
	v, err := j.dev.Read(j.ctx)
	if err != nil {
		o.err = fmt.Errorf("read: %w", err)
	}
	o.v = v
	return o
}

// backoff returns the wait after n consecutive failures: the interval
// doubled per failure, capped, and never shorter than the interval.
func (r *runner) backoff(n int, maxBackoff time.Duration) time.Duration {
	d := r.src.Interval
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(max(d, r.src.Interval), max(maxBackoff, r.src.Interval))
}

// advance moves next to the grid slot after a good read; slots missed
// while a read ran long are skipped rather than burst through.
func (r *runner) advance(now time.Time) {
	r.grid = r.grid.Add(r.src.Interval)
	if r.grid.Before(now) {
		r.grid = now.Add(r.src.Interval - now.Sub(r.grid)%r.src.Interval)
	}
	r.next = r.grid
}

// closeDev closes the device unless a read may still be running in it.
func (r *runner) closeDev() {
	if r.dev == nil || r.busy {
		return
	}
	if err := r.dev.Close(); err != nil {
		r.src.Logger.Debug("sensor close", "err", err)
	}
	r.dev = nil
}
