// Package scheduler runs each sensor on its own interval. A read that
// overruns its timeout is abandoned (periph calls cannot be cancelled) and
// no new read starts on that device until it returns; a failing sensor is
// retried with backoff and, after repeated errors, closed and re-opened; a
// sensor missing at boot is retried, never fatal; one sensor's trouble
// never delays another.
//
// One goroutine keeps the time of every sensor with one timer, so sensors
// due together wake the process once; each sensor has a worker goroutine
// that opens and reads the device, so a hung bus blocks only its worker.
// Samples that arrive together are emitted as one group, which the agent
// stores with one write.
package scheduler

import (
	"context"
	"fmt"
	"log/slog"
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
	// Now is the wall clock (time.Now when nil); tests set it back.
	Now func() time.Time
}

// Defaults for Options.
const (
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultReopenAfter = 5
	// MinOpenTimeout is the least time opening a device may take: a
	// short read timeout must not cut off a slow probe or reset.
	MinOpenTimeout = 10 * time.Second
	// maxLinger bounds how long a sample waits for the others read in
	// the same wake-up (and at most half the shortest interval), so
	// each reading is written before its sensor's next is taken.
	maxLinger = 10 * time.Millisecond
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
// (its sensor returned sensors.ErrDone). emit gets the samples taken
// together, status (optional) every change of a sensor's health; both are
// called from one goroutine, and emit may keep the slice.
func Run(ctx context.Context, srcs []Source, opts Options, emit func([]Sample), status func(Status)) {
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.ReopenAfter <= 0 {
		opts.ReopenAfter = DefaultReopenAfter
	}
	if status == nil {
		status = func(Status) {}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &dispatcher{ctx: ctx, opts: opts, emit: emit, status: status, now: opts.Now,
		results: make(chan outcome, len(srcs))}
	// The grid is aligned to wall-clock multiples of each interval, so
	// sensors with the same interval come due together. The first read
	// is at once.
	now := d.now()
	for _, s := range srcs {
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		r := &runner{src: s, jobs: make(chan job, 1), grid: now.Truncate(s.Interval), next: now}
		r.st.Sensor = s.Name
		d.runners = append(d.runners, r)
		go r.work(d.results, d.now)
	}
	d.active = len(d.runners)
	d.linger = maxLinger
	for _, s := range srcs {
		d.linger = min(d.linger, s.Interval/2)
	}
	d.run()
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
