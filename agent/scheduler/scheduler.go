// Package scheduler runs each sensor on its own interval. A read that
// overruns its timeout is abandoned (periph calls cannot be cancelled) and
// no new read starts on that device until it returns; a failing sensor is
// retried with backoff and, after repeated errors, closed and re-opened; a
// sensor missing at boot is retried, never fatal; one sensor's trouble
// never delays another.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sensor-agent/sensor-agent/sensors"
)

// Source is one configured sensor.
type Source struct {
	Name     string
	Driver   string
	Interval time.Duration
	Timeout  time.Duration
	// Open opens the device; it is called again after failures.
	Open   func(ctx context.Context) (sensors.Sensor, error)
	Logger *slog.Logger
}

// Sample is one successful read, or (Type "health") a change of a
// sensor's health.
type Sample struct {
	Sensor string
	Driver string
	Time   time.Time
	Values sensors.Values
	Type   string
	Error  string
	// LastSuccess is the sensor's last good read, on a health sample.
	LastSuccess time.Time
}

// Options tunes retry behaviour; zero values take the defaults.
type Options struct {
	// MaxBackoff caps the wait between attempts of a failing sensor.
	MaxBackoff time.Duration
	// ReopenAfter is the number of consecutive read errors after which
	// the device is closed and opened again.
	ReopenAfter int
}

// Defaults for Options.
const (
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultReopenAfter = 5
	// MinOpenTimeout is the least time opening a device may take: a
	// short read timeout must not cut off a slow probe or reset.
	MinOpenTimeout = 10 * time.Second
)

// Status is a sensor's health, reported to the caller on every change.
type Status struct {
	Sensor            string
	ConsecutiveErrors int
	LastError         error
	LastSuccess       time.Time
	Done              bool
}

// Run runs every source until ctx is cancelled or every source is done
// (its sensor returned sensors.ErrDone). emit is called from the sources'
// goroutines and must be safe for concurrent use; status (optional) too.
func Run(ctx context.Context, srcs []Source, opts Options, emit func(Sample), status func(Status)) {
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.ReopenAfter <= 0 {
		opts.ReopenAfter = DefaultReopenAfter
	}
	if status == nil {
		status = func(Status) {}
	}
	var wg sync.WaitGroup
	for _, s := range srcs {
		wg.Go(func() {
			if s.Logger == nil {
				s.Logger = slog.New(slog.DiscardHandler)
			}
			r := &runner{src: s, opts: opts, emit: emit, status: status}
			r.run(ctx)
		})
	}
	wg.Wait()
}

type result struct {
	v   sensors.Values
	err error
}

// startRead runs dev.Read in its own goroutine: periph calls take no
// context, so a hung bus must not hang the caller.
func startRead(ctx context.Context, dev sensors.Sensor) chan result {
	ch := make(chan result, 1)
	go func() {
		v, err := dev.Read(ctx)
		ch <- result{v, err}
	}()
	return ch
}

// ReadOnce reads dev once, waiting at most timeout (for `check`).
func ReadOnce(ctx context.Context, dev sensors.Sensor, timeout time.Duration) (sensors.Values, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case r := <-startRead(rctx, dev):
		return r.v, r.err
	case <-rctx.Done():
		return nil, fmt.Errorf("timed out after %s", timeout)
	}
}

type runner struct {
	src    Source
	opts   Options
	emit   func(Sample)
	status func(Status)

	dev      sensors.Sensor
	inflight chan result // a read that outlived its timeout, or nil
	st       Status
}

// backoff returns the wait after n consecutive failures: the interval
// doubled per failure, capped, and never shorter than the interval.
func (r *runner) backoff(n int) time.Duration {
	d := r.src.Interval
	for i := 1; i < n && d < r.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(max(d, r.src.Interval), max(r.opts.MaxBackoff, r.src.Interval))
}

func (r *runner) run(ctx context.Context) {
	log := r.src.Logger
	r.st.Sensor = r.src.Name
	defer r.close(log)
	// The grid is aligned to wall-clock multiples of the interval, so
	// sensors with the same interval come due together: one wake-up of
	// the process reads them all and the writer stores them with one
	// write. The first read is at once.
	next := time.Now().Truncate(r.src.Interval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		done, err := r.step(ctx)
		if done {
			r.st.Done = true
			r.status(r.st)
			log.Info("sensor finished: no more readings")
			return
		}
		if err != nil {
			r.fail(log, err)
			next = time.Now().Add(r.backoff(r.st.ConsecutiveErrors))
		} else {
			// Keep to the grid of the interval; skip slots missed
			// while a read ran long rather than bursting to catch up.
			next = next.Add(r.src.Interval)
			if now := time.Now(); next.Before(now) {
				next = now.Add(r.src.Interval - now.Sub(next)%r.src.Interval)
			}
		}
		timer.Reset(time.Until(next))
	}
}

func (r *runner) fail(log *slog.Logger, err error) {
	r.st.ConsecutiveErrors++
	r.st.LastError = err
	r.status(r.st)
	log.Warn("sensor error", "err", err, "consecutive", r.st.ConsecutiveErrors,
		"retry_in", r.backoff(r.st.ConsecutiveErrors).String())
	if r.st.ConsecutiveErrors%r.opts.ReopenAfter == 0 && r.dev != nil && r.inflight == nil {
		log.Warn("re-opening sensor after repeated errors", "consecutive", r.st.ConsecutiveErrors)
		r.close(log)
	}
}

func (r *runner) close(log *slog.Logger) {
	if r.dev == nil || r.inflight != nil {
		// Never close under a read still running in periph.
		return
	}
	if err := r.dev.Close(); err != nil {
		log.Debug("sensor close", "err", err)
	}
	r.dev = nil
}

// step opens the device if needed and takes one reading.
func (r *runner) step(ctx context.Context) (done bool, err error) {
	if r.inflight != nil {
		select {
		case res := <-r.inflight:
			r.inflight = nil
			_ = res // its deadline passed: the value is stale
		default:
			return false, fmt.Errorf("previous read still running after its %s timeout (device or bus hung?)", r.src.Timeout)
		}
	}
	if r.dev == nil {
		octx, cancel := context.WithTimeout(ctx, max(r.src.Timeout, MinOpenTimeout))
		dev, err := r.src.Open(octx)
		cancel()
		if errors.Is(err, sensors.ErrDone) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("open: %w", err)
		}
		r.dev = dev
	}
	rctx, cancel := context.WithTimeout(ctx, r.src.Timeout)
	defer cancel()
	start := time.Now()
	ch := startRead(rctx, r.dev)
	select {
	case res := <-ch:
		if errors.Is(res.err, sensors.ErrDone) {
			return true, nil
		}
		if res.err != nil {
			return false, fmt.Errorf("read: %w", res.err)
		}
		if ctx.Err() != nil {
			return false, nil
		}
		r.emit(Sample{Sensor: r.src.Name, Driver: r.src.Driver, Time: start, Values: res.v})
		if r.st.ConsecutiveErrors > 0 {
			r.src.Logger.Info("sensor recovered", "after_errors", r.st.ConsecutiveErrors)
		}
		changed := r.st.ConsecutiveErrors > 0 || r.st.LastSuccess.IsZero()
		r.st.ConsecutiveErrors = 0
		r.st.LastSuccess = start
		if changed {
			r.status(r.st)
		}
		return false, nil
	case <-rctx.Done():
		if ctx.Err() != nil {
			r.inflight = ch
			return false, nil
		}
		r.inflight = ch
		return false, fmt.Errorf("read: timed out after %s", r.src.Timeout)
	}
}
