// Package agent wires the data path together: sensors are read by the
// scheduler, each sample is stamped into a reading (seq + UTC time), the
// batcher groups readings per topic, a bounded queue holds the batches and
// the sender publishes them to AWS IoT, retrying what can be retried.
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
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/batch"
	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/agent/reading"
	"github.com/sensor-agent/sensor-agent/agent/scheduler"
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
	// ExitWhenIdle makes Run return once every sensor has finished and
	// everything taken has been published.
	ExitWhenIdle bool
	// ShutdownTimeout bounds the last send attempt after cancellation.
	ShutdownTimeout time.Duration
	// StatusInterval is how often a status line is logged (0 = 5m).
	StatusInterval time.Duration
}

// Stats are running totals, safe to read at any time.
type Stats struct {
	ReadingsTaken     int64
	ReadErrors        int64
	BatchesPublished  int64
	ReadingsPublished int64
	PublishErrors     int64
	ReadingsDropped   int64 // pushed out of the full queue or rejected
	LastPublish       time.Time
	LastPublishError  string
}

// Agent is one running instance.
type Agent struct {
	cfg  *config.Config
	opts Options
	log  *slog.Logger

	seq    *reading.Sequencer
	pub    Publisher
	closer func()
	srcs   []scheduler.Source
	topics map[string]string // sensor name → rendered topic

	taken, readErrs, batches, published, pubErrs, dropped atomic.Int64
	mu                                                    sync.Mutex
	lastPublish                                           time.Time
	lastPubErr                                            string
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
	return &Agent{cfg: cfg, opts: opts, log: opts.Logger}
}

// Provision opens the sequence file and the publisher and prepares the
// sensors. Sensors themselves are opened by the scheduler, so a device
// missing at boot is retried rather than fatal.
func (a *Agent) Provision() error {
	seq, err := reading.OpenSequencer(a.cfg.StateDir, 0, reading.BootID(), "", 0)
	if err != nil {
		return err
	}
	a.seq = seq
	tmpl, err := publisher.ParseTopicTemplate(a.cfg.Publish.Topic)
	if err != nil {
		return fmt.Errorf("publish.topic: %w", err)
	}
	a.topics = map[string]string{}
	for _, s := range a.cfg.Sensors {
		topic, err := tmpl.Render(a.cfg.DeviceID, s.Name, s.Driver)
		if err != nil {
			return fmt.Errorf("sensor %s: topic: %w", s.Name, err)
		}
		a.topics[s.Name] = topic
		a.srcs = append(a.srcs, a.source(s))
	}
	if a.opts.Publisher != nil {
		a.pub = a.opts.Publisher
		return nil
	}
	e := a.cfg.Endpoint
	c, err := publisher.New(publisher.Config{
		Host: e.Host, Port: e.Port, ALPN: e.ALPN,
		CertFile: e.CertFile, KeyFile: e.KeyFile, CAFile: e.CAFile,
		Timeout: e.Timeout.D(), QoS: a.cfg.Publish.QoS,
	}, a.log.With("module", "publisher"))
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
			return drv.Open(ctx, a.env(s.Name, log), s.Opts)
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

// Cleanup releases what Provision opened.
func (a *Agent) Cleanup() {
	if a.closer != nil {
		a.closer()
	}
}

// Stats returns the running totals.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Stats{
		ReadingsTaken: a.taken.Load(), ReadErrors: a.readErrs.Load(),
		BatchesPublished: a.batches.Load(), ReadingsPublished: a.published.Load(),
		PublishErrors: a.pubErrs.Load(), ReadingsDropped: a.dropped.Load(),
		LastPublish: a.lastPublish, LastPublishError: a.lastPubErr,
	}
}

// Run samples, batches and publishes until ctx is cancelled (or, with
// ExitWhenIdle, until every sensor has finished and all is published).
func (a *Agent) Run(ctx context.Context) error {
	if a.seq == nil {
		return errors.New("agent: Run before Provision")
	}
	readings := make(chan reading.Reading, 1024)
	q := newQueue(int(a.cfg.Publish.QueueBytes), func(b batch.Batch) {
		a.dropped.Add(int64(b.Count))
		a.log.Error("publish queue full: dropped the oldest batch", "topic", b.Topic,
			"seq_first", b.FirstSeq, "seq_last", b.LastSeq, "readings", b.Count)
	})

	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(readings)
		scheduler.Run(ctx, a.srcs, scheduler.Options{}, func(s scheduler.Sample) {
			a.emit(readings, s)
		}, func(st scheduler.Status) {
			if st.LastError != nil && st.ConsecutiveErrors > 0 {
				a.readErrs.Add(1)
			}
		})
		a.log.Debug("all sensors stopped")
	})
	wg.Go(func() { a.batchLoop(readings, q) })
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		a.sendLoop(ctx, q)
	}()
	statusTicker := time.NewTicker(a.opts.StatusInterval)
	defer statusTicker.Stop()
	for done := false; !done; {
		select {
		case <-statusTicker.C:
			a.logStatus(q)
		case <-senderDone:
			done = true
		}
	}
	wg.Wait()
	a.logStatus(q)
	if b, r := q.len(); r > 0 {
		return fmt.Errorf("shutdown: %d readings in %d batches were not published and are lost (the durable spool is not built yet)", r, b)
	}
	if ctx.Err() == nil && !a.opts.ExitWhenIdle {
		// Every sensor finished but the agent is a service: stay up.
		<-ctx.Done()
	}
	return nil
}

func (a *Agent) logStatus(q *queue) {
	st := a.Stats()
	b, r := q.len()
	a.log.Info("status", "taken", st.ReadingsTaken, "published", st.ReadingsPublished,
		"pending_readings", r, "pending_batches", b, "read_errors", st.ReadErrors,
		"publish_errors", st.PublishErrors, "dropped", st.ReadingsDropped)
}

// emit stamps a sample into a reading.
func (a *Agent) emit(out chan<- reading.Reading, s scheduler.Sample) {
	n, err := a.seq.Next()
	if err != nil {
		a.log.Error("cannot persist the sequence counter: numbers may repeat after a restart", "err", err)
	}
	r := reading.Reading{Seq: n, Sensor: s.Sensor, Driver: s.Driver, Time: s.Time.UTC(), Values: s.Values}
	a.taken.Add(1)
	// The batcher never blocks for long (the queue drops, it does not
	// wait), so this send only waits for a busy batcher goroutine.
	out <- r
}

// batchLoop owns the batcher.
func (a *Agent) batchLoop(in <-chan reading.Reading, q *queue) {
	p := a.cfg.Publish
	b := batch.New(batch.Options{
		Device: a.cfg.DeviceID, MaxReadings: p.MaxReadings, MaxBytes: int(p.MaxBytes),
		FlushInterval: p.FlushInterval.D(), Single: p.Format == "single",
	}, time.Now)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false
	rearm := func() {
		if next, ok := b.NextDue(); ok {
			timer.Reset(time.Until(next))
			armed = true
		} else if armed {
			timer.Stop()
			armed = false
		}
	}
	for {
		select {
		case r, ok := <-in:
			if !ok {
				for _, bt := range b.Flush() {
					q.push(bt)
				}
				q.close()
				return
			}
			for _, bt := range b.Add(a.topics[r.Sensor], &r) {
				q.push(bt)
			}
		case <-timer.C:
			armed = false
			for _, bt := range b.Due() {
				q.push(bt)
			}
		}
		rearm()
	}
}

// Retry policies: transient failures retry soon; authorisation failures
// keep the data and wait long, since only a human can fix them.
func backoffs() (retry, auth publisher.Backoff) {
	retry = publisher.Backoff{Min: time.Second, Max: 2 * time.Minute, Factor: 2, Jitter: 0.5, Rand: rand.Float64}
	auth = publisher.Backoff{Min: time.Minute, Max: 30 * time.Minute, Factor: 2, Jitter: 0.2, Rand: rand.Float64}
	return retry, auth
}

// sendLoop publishes batches in order, one at a time over the publisher's
// kept-alive connection. Once ctx is cancelled it makes one last attempt
// per remaining batch, without waiting, until the queue is drained, an
// attempt fails, or ShutdownTimeout has passed.
func (a *Agent) sendLoop(ctx context.Context, q *queue) {
	drain, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(a.opts.ShutdownTimeout, cancel) })
	defer stop()
	retry, auth := backoffs()
	attempt := 0
	for {
		b, ok := q.peek()
		if !ok || drain.Err() != nil {
			return // what is left stays queued for Run to count
		}
		_, err := a.pub.Publish(drain, b.Topic, b.Payload)
		if err == nil {
			q.pop(b)
			attempt = 0
			a.batches.Add(1)
			a.published.Add(int64(b.Count))
			a.mu.Lock()
			a.lastPublish, a.lastPubErr = time.Now(), ""
			a.mu.Unlock()
			continue
		}
		a.pubErrs.Add(1)
		a.mu.Lock()
		a.lastPubErr = err.Error()
		a.mu.Unlock()
		attempt++
		var wait time.Duration
		switch publisher.KindOf(err) {
		case publisher.Permanent:
			q.pop(b)
			attempt = 0
			a.dropped.Add(int64(b.Count))
			a.log.Error("message rejected permanently; dropping it", "topic", b.Topic,
				"seq_first", b.FirstSeq, "seq_last", b.LastSeq, "readings", b.Count, "err", err)
			continue
		case publisher.Auth:
			wait = auth.Delay(attempt)
			a.log.Error("publish refused: check the certificate, its policy and the endpoint; data is kept",
				"err", err, "retry_in", wait.Round(time.Second).String())
		default:
			wait = retry.Delay(attempt)
			a.log.Warn("publish failed; will retry", "err", err, "attempt", attempt,
				"retry_in", wait.Round(time.Millisecond).String())
		}
		if ctx.Err() != nil {
			return // the last attempt failed
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done(): // shutting down: retry now, once
		}
		t.Stop()
	}
}
