// Package agent wires the data path together: the scheduler reads the
// sensors, the writer stamps each sample into a reading (seq + UTC time)
// and appends it to the durable spool, and the sender batches what the
// spool holds per topic and publishes it to AWS IoT, live data first,
// acknowledging each record only after a 200.
//
// Lifecycle (after Caddy's modules): New has no side effects; Provision
// opens what the agent needs and reports configuration problems; Run runs
// until its context is cancelled; Cleanup releases what Provision opened.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/clock"
	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/agent/history"
	"github.com/sensor-agent/sensor-agent/agent/reading"
	"github.com/sensor-agent/sensor-agent/agent/scheduler"
	"github.com/sensor-agent/sensor-agent/agent/spool"
	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/sensors"
)

// Publisher sends one message; *publisher.Client is the real one.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte) (publisher.Result, error)
}

// Options are the agent's non-config settings.
type Options struct {
	Logger *slog.Logger
	// Env builds a sensor's host access; nil = sensors.DefaultEnv with
	// SysFS below. Tests substitute periph's fakes.
	Env func(name string, logger *slog.Logger) sensors.Env
	// SysFS overrides the sysfs root for the default Env ("" = /sys).
	SysFS string
	// Publisher overrides the HTTPS client built from the config.
	Publisher Publisher
	// SpoolFS overrides the spool's filesystem (tests inject faults).
	SpoolFS spool.FS
	// BootID overrides the kernel's boot id (tests).
	BootID func() string
	// ExitWhenIdle makes Run return once every sensor has finished and
	// everything taken has been published.
	ExitWhenIdle bool
	// ShutdownTimeout bounds the last send attempt after cancellation.
	ShutdownTimeout time.Duration
	// StatusInterval is how often a status line is logged (0 = 5m).
	StatusInterval time.Duration
	// Clock says whether the system clock is synchronised; readings taken
	// while it is not carry "clock_synced":false. nil = clock.New, the
	// machine's (systemd-timesyncd, else the kernel).
	Clock clock.Source
	// History, when set, keeps the recent values of every sensor for the
	// live page; it is configured for this agent's sensors by Provision
	// and outlives a reload.
	History *history.Store
	// Remote, when set, says what desired state from the Device Shadow is
	// in effect, for Snapshot.
	Remote func() *RemoteConfig
	// Previous is the agent this one replaces (a reload): its lock,
	// spool, sequence counter and the readings it holds only in memory
	// are taken over, so a reload loses nothing and numbering goes on
	// without a gap. Its Run must have returned.
	Previous *Agent
}

// Stats are running totals, safe to read at any time.
type Stats struct {
	ReadingsTaken     int64
	ReadErrors        int64
	BatchesPublished  int64
	ReadingsPublished int64
	// BytesPublished counts the message bodies the endpoint accepted.
	BytesPublished   int64
	PublishErrors    int64
	DeadLettered     int64
	LastPublish      time.Time
	LastPublishError string
}

// Agent is one running instance.
type Agent struct {
	cfg  *config.Config
	opts Options
	log  *slog.Logger

	st      *storage // nil before Provision and once handed to the next agent
	carry   carried  // memory readings of a Previous whose storage could not be kept
	pub     Publisher
	closer  func()
	srcs    []scheduler.Source
	topics  map[string]string // sensor name → rendered topic
	drivers map[string]string // sensor name → driver
	health  map[string]health // last published, under mu
	sensors map[string]*sensorState
	started time.Time // Provision

	wakeCh       chan struct{} // the writer stored something
	head, synced atomic.Uint64
	clockSynced  atomic.Bool // the clock's last answer, for logging changes
	seqDurable   bool        // the counter's last answer, for logging changes (writer only)
	syncErr      string      // the last sync error logged, and when (writer only)
	syncErrAt    time.Time

	taken, readErrs, batches, published, pubBytes, pubErrs, deadLettered atomic.Int64

	pubErrKinds [len(publishKinds)]atomic.Int64 // failed publishes by kind, for /metrics
	latency     latency                         // publish request durations, for /metrics

	mu              sync.Mutex
	lastPublish     time.Time
	lastPubErr      string
	droppedReported map[string]uint64 // loss reports delivered, by reason
}

// New returns an agent for cfg. It opens nothing.
func New(cfg *config.Config, opts Options) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = 5 * time.Minute
	}
	if opts.BootID == nil {
		opts.BootID = reading.BootID
	}
	if opts.Clock == nil {
		opts.Clock = clock.New(clock.Options{Logger: opts.Logger.With("module", "clock")})
	}
	return &Agent{cfg: cfg, opts: opts, log: opts.Logger, wakeCh: make(chan struct{}, 1)}
}

// Provision opens the spool, the sequence counter and the publisher and
// prepares the sensors. Sensors themselves are opened by the scheduler, so
// a device missing at boot is retried rather than fatal. The agent never
// refuses to start because of its disk: if the spool or the counter
// cannot be written, readings are kept in memory under a volatile
// incarnation and the problem is logged. It does refuse when another
// agent holds the state directory or the spool.
func (a *Agent) Provision() error {
	tmpl, err := publisher.ParseTopicTemplate(a.cfg.Publish.Topic)
	if err != nil {
		return fmt.Errorf("publish.topic: %w", err)
	}
	a.topics, a.drivers, a.health = map[string]string{}, map[string]string{}, map[string]health{}
	a.sensors, a.started = a.newSensorStates(), time.Now()
	for _, s := range a.cfg.Sensors {
		a.drivers[s.Name] = s.Driver
		topic, err := tmpl.Render(a.cfg.DeviceID, s.Name, s.Driver)
		if err != nil {
			return fmt.Errorf("sensor %s: topic: %w", s.Name, err)
		}
		a.topics[s.Name] = topic
		a.srcs = append(a.srcs, a.source(s))
	}
	if err := a.provisionPublisher(); err != nil {
		return err
	}
	if err := a.provisionStorage(); err != nil {
		a.Cleanup()
		if prev := a.opts.Previous; prev != nil {
			// Whatever takes over next (the previous config again)
			// gets the readings memory held.
			prev.carry, a.carry = a.carry, carried{}
		}
		return err
	}
	a.seqDurable = a.st.seq.Err() == nil
	a.configureHistory()
	a.log.Info("spool open", "dir", a.cfg.Spool.Dir, "incarnation", a.st.store.Incarnation(),
		"pending", a.st.store.PendingCount(), "next_seq", a.st.seq.Peek())
	return nil
}

func (a *Agent) configureHistory() {
	if a.opts.History == nil {
		return
	}
	hs := make([]history.Sensor, 0, len(a.cfg.Sensors))
	for _, s := range a.cfg.Sensors {
		hs = append(hs, history.Sensor{Name: s.Name, Interval: s.Interval.D()})
	}
	a.opts.History.Configure(a.cfg.HTTP.History.D(), int64(a.cfg.HTTP.HistoryMaxBytes), hs)
	for name, st := range a.sensors {
		st.hist = a.opts.History.Recorder(name)
	}
}

func (a *Agent) provisionPublisher() error {
	if a.opts.Publisher != nil {
		a.pub = a.opts.Publisher
		return nil
	}
	c, err := publisher.New(a.cfg.PublisherConfig(), a.log.With("module", "publisher"))
	if err != nil {
		return err
	}
	a.pub, a.closer = c, c.Close
	return nil
}

// source turns a config entry into a scheduler source.
func (a *Agent) source(s config.Sensor) scheduler.Source {
	log := a.log.With("sensor", s.Name, "driver", s.Driver)
	drv, _ := sensors.Lookup(s.Driver) // the config loader checked it
	return scheduler.Source{
		Name: s.Name, Driver: s.Driver,
		Interval: s.Interval.D(), Timeout: s.Timeout.D(),
		Logger: log,
		Open: func(ctx context.Context) (sensors.Sensor, error) {
			return sensors.Open(ctx, drv, a.env(s.Name, log), s.Opts, s.Common())
		},
	}
}

func (a *Agent) env(name string, log *slog.Logger) sensors.Env {
	if a.opts.Env != nil {
		return a.opts.Env(name, log)
	}
	env := sensors.DefaultEnv(name, log)
	if a.opts.SysFS != "" {
		env.SysFS = a.opts.SysFS
	}
	return env
}

// Cleanup releases what Provision opened (unless the next agent took it
// over): the spool is synced and closed, the lock released.
func (a *Agent) Cleanup() {
	if a.st != nil {
		a.st.close(a.log)
		a.st = nil
	}
	if a.closer != nil {
		a.closer()
		a.closer = nil
	}
}

// Stats returns the running totals.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Stats{
		ReadingsTaken: a.taken.Load(), ReadErrors: a.readErrs.Load(),
		BatchesPublished: a.batches.Load(), ReadingsPublished: a.published.Load(), BytesPublished: a.pubBytes.Load(),
		PublishErrors: a.pubErrs.Load(), DeadLettered: a.deadLettered.Load(),
		LastPublish: a.lastPublish, LastPublishError: a.lastPubErr,
	}
}

// Pending is the number of readings taken but not yet acknowledged by the
// endpoint (spool and memory), 0 before Provision.
func (a *Agent) Pending() int64 {
	if a.st == nil {
		return 0
	}
	return a.st.store.PendingCount()
}

func (a *Agent) setLastPublish(t time.Time, errMsg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !t.IsZero() {
		a.lastPublish = t
	}
	a.lastPubErr = errMsg
}

func (a *Agent) wake() {
	select {
	case a.wakeCh <- struct{}{}:
	default:
	}
}

// Run samples, stores and publishes until ctx is cancelled (or, with
// ExitWhenIdle, until every sensor has finished and all is published).
// At shutdown everything taken is in the spool and synced; what could not
// be sent in time is sent after the next start.
func (a *Agent) Run(ctx context.Context) error {
	if a.st == nil {
		return errors.New("agent: Run before Provision")
	}
	a.logClockAtStart()
	samples := make(chan []scheduler.Sample, 256)
	writerDone := make(chan struct{})
	snd := newSender(a) // before the writer: what is stored now is backlog
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(samples)
		scheduler.Run(ctx, a.srcs, scheduler.Options{}, func(group []scheduler.Sample) {
			samples <- group
		}, func(st scheduler.Status) {
			if st.LastError != nil && st.ConsecutiveErrors > 0 {
				a.readErrs.Add(1)
			}
			a.sensors[st.Sensor].setStatus(st)
			if h, ok := a.healthChange(st); ok {
				samples <- []scheduler.Sample{h}
			}
		})
		a.log.Debug("all sensors stopped")
	})
	wg.Go(func() {
		defer close(writerDone)
		a.writeLoop(samples)
	})
	statusCtx, stopStatus := context.WithCancel(ctx)
	wg.Go(func() {
		t := clock.NewTicker(a.opts.StatusInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				t.Next()
				a.logStatus()
			case <-statusCtx.Done():
				return
			}
		}
	})
	a.sendLoop(ctx, snd, writerDone)
	stopStatus()
	wg.Wait()
	a.logStatus()
	if ctx.Err() == nil && !a.opts.ExitWhenIdle {
		<-ctx.Done() // a service stays up even when every sensor finished
	}
	return nil
}

// health is the last health published per sensor.
type health struct {
	healthy bool
	err     string
}

// healthChange returns a health reading when a sensor's health differs
// from what was last published: at its first status, when it starts or
// stops failing, and when its error changes.
func (a *Agent) healthChange(st scheduler.Status) (scheduler.Sample, bool) {
	if st.Done || !a.cfg.Publish.Health {
		return scheduler.Sample{}, false
	}
	h := health{healthy: st.ConsecutiveErrors == 0}
	if !h.healthy && st.LastError != nil {
		h.err = st.LastError.Error()
	}
	a.mu.Lock()
	prev, seen := a.health[st.Sensor]
	a.health[st.Sensor] = h
	a.mu.Unlock()
	if seen && prev == h {
		return scheduler.Sample{}, false
	}
	ok := 0.0
	if h.healthy {
		ok = 1
	}
	return scheduler.Sample{Sensor: st.Sensor, Driver: a.drivers[st.Sensor], Time: time.Now(), Type: reading.Health,
		Values: sensors.Values{"healthy": ok, "consecutive_errors": float64(st.ConsecutiveErrors)}, Error: h.err,
		LastSuccess: st.LastSuccess}, true
}

func (a *Agent) logStatus() {
	st := a.Stats()
	a.log.Info("status", "taken", st.ReadingsTaken, "published", st.ReadingsPublished,
		"pending", a.st.store.PendingCount(), "synced_through", a.synced.Load(), "read_errors", st.ReadErrors,
		"publish_errors", st.PublishErrors, "dead_lettered", st.DeadLettered)
}
