package agent

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/batch"
	"github.com/sensor-agent/sensor-agent/agent/spool"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// sender publishes what the writer stored. Live data goes first: new
// records are read back from the spool into the live batcher and sent as
// their batches fill or come due. When a publish fails, everything read so
// far becomes backlog (it is all in the spool), and after the backoff the
// newest readings are sent first, as the probe. The backlog then drains
// oldest first, at publish.max_rate, whenever no live batch is waiting.
type sender struct {
	a    *Agent
	live *batch.Batcher
	back *batch.Batcher

	liveRead  uint64 // highest seq read into the live batcher
	liveStart uint64 // unacknowledged seqs below this are backlog
	backPos   uint64 // backlog scanning resumes after this seq

	ready   []batch.Batch // live batches, oldest first
	backlog []batch.Batch

	outage      bool
	attempt     int
	retryAt     time.Time
	nextBack    time.Time
	outageSince time.Time // the first failure of this outage
	failLogged  time.Time // the last failure logged

	retry, auth publisher.Backoff
	buf         []byte
}

const (
	// maxReady bounds the live batches kept in memory while the endpoint
	// is unreachable; beyond it they are left to the backlog.
	maxReady = 64
	// window is how many records one read of the spool takes.
	window = 4096
)

func newSender(a *Agent) *sender {
	p := a.cfg.Publish
	opts := batch.Options{
		Device: a.cfg.DeviceID, Incarnation: a.st.store.Incarnation(),
		MaxReadings: p.MaxReadings, MaxBytes: int(p.MaxBytes),
		FlushInterval: p.FlushInterval.D(), Single: p.Format == "single",
	}
	start := a.st.store.LastSeq() + 1 // what is already stored is backlog
	return &sender{
		a: a, live: batch.New(opts, time.Now), back: batch.New(opts, time.Now),
		liveRead: start - 1, liveStart: start,
		retry: retryBackoff, auth: authBackoff,
	}
}

var (
	// Transient failures (network, 5xx, 429, lost replies) are retried
	// soon and often: the probe is one small message, so data flows again
	// within seconds of the endpoint's return, and a flaky endpoint keeps
	// the backlog moving instead of pushing the wait towards minutes.
	retryBackoff = publisher.Backoff{Min: 500 * time.Millisecond, Max: 5 * time.Second, Factor: 2, Jitter: 0.5, Rand: rand.Float64}
	// busyBackoff is for the first busyAttempts failures in a row that
	// the endpoint answered (429, 5xx).
	busyBackoff  = publisher.Backoff{Min: 250 * time.Millisecond, Max: 2 * time.Second, Factor: 1.5, Jitter: 0.5, Rand: rand.Float64}
	busyAttempts = 10
	// Authorisation and configuration failures (403, a redirect, 404)
	// keep the data and wait long: only a human can fix them.
	authBackoff = publisher.Backoff{Min: time.Minute, Max: 30 * time.Minute, Factor: 2, Jitter: 0.2, Rand: rand.Float64}
)

// sendLoop runs until ctx is cancelled (then makes one last attempt per
// live batch within ShutdownTimeout) or, with ExitWhenIdle, until the
// writer has finished and nothing is left to send.
//
// s must be made (newSender) before the writer starts: what is stored at
// that moment is the backlog, the rest is live.
func (a *Agent) sendLoop(ctx context.Context, s *sender, writerDone <-chan struct{}) {
	drain, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(a.opts.ShutdownTimeout, cancel) })
	defer stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	writing := true
	for {
		if writing {
			select {
			case <-writerDone:
				writing = false
			default:
			}
		}
		if ctx.Err() != nil {
			s.final(drain, writerDone)
			return
		}
		s.pullLive()
		s.ready = append(s.ready, s.live.Due()...)
		if !writing {
			// No more readings will come: don't wait for flush_interval.
			s.ready = append(s.ready, s.live.Flush()...)
			if a.opts.ExitWhenIdle && s.idle() {
				return
			}
		}
		b, fromBacklog, wait := s.next(time.Now())
		if b != nil {
			s.send(drain, b, fromBacklog)
			continue
		}
		timer.Reset(wait)
		var done <-chan struct{}
		if writing {
			done = writerDone
		}
		select {
		case <-a.wakeCh:
		case <-timer.C:
		case <-done:
		case <-ctx.Done():
		}
	}
}

// pullLive reads records the writer added since the last call.
func (s *sender) pullLive() {
	for {
		n := 0
		_, err := s.a.st.store.Pending(s.liveRead, window, func(r spool.Record, inc string) bool {
			n++
			s.liveRead = r.Seq
			h, js, ok := SplitRecord(r.Data)
			if !ok {
				s.a.log.Error("spool record without a topic: skipped", "seq", r.Seq)
				s.a.st.store.Ack(inc, []uint64{r.Seq})
				return true
			}
			if h.Incarnation == "" {
				h.Incarnation = inc
			}
			s.ready = append(s.ready, s.live.Add(h, r.Seq, js)...)
			return true
		})
		if err != nil {
			s.a.log.Error("reading the spool", "err", err)
			return
		}
		if s.outage && len(s.ready) > maxReady {
			s.toBacklog() // keep memory bounded; the spool has it all
		}
		if n < window {
			return
		}
	}
}

// next picks what to send now, or how long to wait.
func (s *sender) next(now time.Time) (b *batch.Batch, fromBacklog bool, wait time.Duration) {
	wait = time.Hour
	if due, ok := s.live.NextDue(); ok {
		wait = max(due.Sub(now), time.Millisecond)
	}
	if now.Before(s.retryAt) {
		return nil, false, min(wait, s.retryAt.Sub(now))
	}
	if s.outage && len(s.ready) == 0 {
		// The probe after an outage carries the newest readings.
		s.ready = append(s.ready, s.live.Flush()...)
	}
	if len(s.ready) > 0 {
		return &s.ready[0], false, 0
	}
	if rate := s.a.cfg.Publish.MaxRate; rate > 0 && now.Before(s.nextBack) {
		return nil, false, min(wait, s.nextBack.Sub(now))
	}
	if len(s.backlog) == 0 {
		s.refillBacklog()
	}
	if len(s.backlog) > 0 {
		return &s.backlog[0], true, 0
	}
	return nil, false, wait
}

// refillBacklog builds backlog batches from the oldest stored records.
func (s *sender) refillBacklog() {
	if s.backPos+1 >= s.liveStart {
		return
	}
	last := s.backPos
	frontier, err := s.a.st.store.Pending(s.backPos, window, func(r spool.Record, inc string) bool {
		if r.Seq >= s.liveStart {
			return false
		}
		last = r.Seq
		h, js, ok := SplitRecord(r.Data)
		if !ok {
			s.a.st.store.Ack(inc, []uint64{r.Seq})
			return true
		}
		if h.Incarnation == "" {
			h.Incarnation = inc
		}
		s.backlog = append(s.backlog, s.back.Add(h, r.Seq, js)...)
		return true
	})
	if err != nil {
		s.a.log.Error("reading the spool backlog", "err", err)
	}
	s.backlog = append(s.backlog, s.back.Flush()...)
	if last == s.backPos {
		if err == nil && frontier >= s.liveStart-1 {
			s.backPos = s.liveStart - 1 // nothing left below liveStart
		}
		// Else records below liveStart wait to be durable (moved
		// from memory, carried from a deleted spool): read again after
		// the next sync.
		return
	}
	s.backPos = last
}

// toBacklog leaves everything read so far to the backlog and forgets the
// queued batches; the spool still holds them.
func (s *sender) toBacklog() {
	s.ready = nil
	s.live.Reset()
	s.liveStart = s.liveRead + 1
	for _, b := range s.backlog {
		s.backPos = min(s.backPos, b.Seqs[0]-1)
	}
	s.backlog = nil
	s.back.Reset()
}

// pop removes b from the front of its queue.
func (s *sender) pop(fromBacklog bool) {
	if fromBacklog {
		s.backlog = s.backlog[1:]
	} else {
		s.ready = s.ready[1:]
	}
}

// send publishes b and settles it: acknowledged, split, dead-lettered or
// kept for a retry.
func (s *sender) send(ctx context.Context, b *batch.Batch, fromBacklog bool) {
	a := s.a
	now := time.Now()
	reported := s.reportable(b)
	meta := batch.Meta{Device: a.cfg.DeviceID, Incarnation: a.st.store.Incarnation(), SentAt: now}
	for _, d := range reported {
		meta.Dropped = append(meta.Dropped, batch.Dropped{First: d.First, Last: d.Last, Count: d.Count,
			Reason: d.Reason.String(), Incarnation: d.Incarnation})
	}
	single := a.cfg.Publish.Format == "single"
	s.buf = batch.Envelope(s.buf[:0], meta, b, single)
	start := time.Now()
	_, err := a.pub.Publish(ctx, b.Topic, s.buf)
	a.latency.observe(time.Since(start))
	if fromBacklog && a.cfg.Publish.MaxRate > 0 {
		s.nextBack = now.Add(time.Duration(float64(time.Second) / a.cfg.Publish.MaxRate))
	}
	if err == nil {
		a.pubBytes.Add(int64(len(s.buf)))
		s.delivered(b, reported, fromBacklog, now)
		return
	}
	a.pubErrs.Add(1)
	a.countPublishError(err)
	a.setLastPublish(time.Time{}, err.Error())
	if publisher.KindOf(err) == publisher.Permanent {
		s.refused(b, fromBacklog, err)
		return
	}
	s.failed(err, now)
}

// delivered acknowledges what b carried.
func (s *sender) delivered(b *batch.Batch, reported []spool.DroppedRange, fromBacklog bool, now time.Time) {
	a := s.a
	a.st.store.Ack(b.Incarnation, b.Seqs)
	a.st.store.AckDropped(reported)
	a.countReported(reported)
	a.batches.Add(1)
	a.published.Add(int64(b.Count()))
	a.setLastPublish(now, "")
	if s.outage {
		a.log.Info("publishing again", "after_attempts", s.attempt,
			"outage", now.Sub(s.outageSince).Round(time.Millisecond).String())
	}
	s.outage, s.attempt = false, 0
	s.pop(fromBacklog)
}

// refused handles a permanent refusal: a message too large is split in
// two; anything else is dead-lettered.
func (s *sender) refused(b *batch.Batch, fromBacklog bool, err error) {
	a := s.a
	seqs, count := b.Seqs, b.Count()
	if pe, ok := err.(*publisher.Error); ok && pe.Status == 413 && count > 1 {
		x, y := b.Split()
		s.pop(fromBacklog)
		if fromBacklog {
			s.backlog = append([]batch.Batch{x, y}, s.backlog...)
		} else {
			s.ready = append([]batch.Batch{x, y}, s.ready...)
		}
		a.log.Warn("message too large for the endpoint: split in two", "topic", b.Topic, "readings", count)
		return
	}
	a.deadLetter(b.Topic, seqs, s.buf, err)
	a.st.store.Ack(b.Incarnation, seqs)
	s.pop(fromBacklog)
}

// failed schedules the retry of a failed publish; its data is kept.
func (s *sender) failed(err error, now time.Time) {
	a := s.a
	s.attempt++
	var wait time.Duration
	if publisher.KindOf(err) == publisher.Auth {
		wait = s.auth.Delay(s.attempt)
		a.log.Error("publish refused: check the certificate, its policy and the endpoint; data is kept",
			"err", err, "retry_in", wait.Round(time.Second).String())
	} else {
		wait = s.retry.Delay(s.attempt)
		if pe, ok := err.(*publisher.Error); ok && pe.Status != 0 && s.attempt <= busyAttempts {
			// It answered (429, 5xx): the endpoint is there, only busy
			// or flaky. Retry sooner, so a flaky endpoint keeps the
			// backlog moving; a long run of such answers is an outage
			// and gets the usual delays.
			wait = busyBackoff.Delay(s.attempt)
		}
		if pe, ok := err.(*publisher.Error); ok && pe.RetryAfter > wait {
			wait = pe.RetryAfter
		}
		s.logRetry(err, wait, now)
	}
	if s.attempt == 1 {
		s.outageSince = now
	}
	s.retryAt = now.Add(wait)
	s.outage = true
	s.toBacklog()
}

// logRetry logs the first few retries, then one line a minute, so a day
// offline does not fill the journal.
func (s *sender) logRetry(err error, wait time.Duration, now time.Time) {
	switch {
	case s.attempt <= 3:
		s.a.log.Warn("publish failed; will retry", "err", err, "attempt", s.attempt,
			"retry_in", wait.Round(time.Millisecond).String())
		s.failLogged = now
	case now.Sub(s.failLogged) >= time.Minute:
		s.a.log.Warn("publish still failing; retrying every few seconds", "err", err, "attempt", s.attempt,
			"since", s.outageSince.UTC().Format(time.RFC3339))
		s.failLogged = now
	}
}

// idle reports that nothing is waiting anywhere.
func (s *sender) idle() bool {
	if len(s.ready) > 0 || len(s.backlog) > 0 || s.live.Len() > 0 {
		return false
	}
	return s.a.st.store.PendingCount() == 0
}

// reportable returns the losses to report in the message for b: at most
// batch.MaxDropped ranges, without any reading this sender still holds in
// a batch (b's, which is delivered with it, and others', which may yet be
// delivered: a reading is reported lost only once it is really gone).
func (s *sender) reportable(b *batch.Batch) []spool.DroppedRange {
	all := s.a.st.store.Dropped()
	if len(all) == 0 {
		return nil
	}
	held := slices.Clone(b.Seqs)
	for _, q := range [][]batch.Batch{s.ready, s.backlog} {
		for i := range q {
			held = append(held, q[i].Seqs...)
		}
	}
	held = s.live.AppendSeqs(s.back.AppendSeqs(held))
	out := withoutSeqs(all, "", held)
	return out[:min(len(out), batch.MaxDropped)]
}

// final makes one last attempt per live batch after shutdown was asked
// for, within the drain deadline. Whatever is left stays in the spool.
func (s *sender) final(drain context.Context, writerDone <-chan struct{}) {
	select {
	case <-writerDone: // the writer has stored its last readings
	case <-drain.Done():
	}
	s.pullLive()
	s.ready = append(s.ready, s.live.Flush()...)
	for len(s.ready) > 0 && drain.Err() == nil {
		n := len(s.ready)
		s.send(drain, &s.ready[0], false)
		if len(s.ready) >= n || s.outage {
			break // it failed: no retries at shutdown
		}
	}
	// Time left: the backlog too, oldest first, still without retries.
	for !s.outage && drain.Err() == nil {
		if len(s.backlog) == 0 {
			s.refillBacklog()
		}
		if len(s.backlog) == 0 {
			break
		}
		s.send(drain, &s.backlog[0], true)
	}
	inSpool, inMemory := s.a.st.store.Counts()
	if inSpool > 0 {
		s.a.log.Info("shutting down with readings not yet published: they remain in the spool and are sent after the next start",
			"readings", inSpool, "dir", s.a.cfg.Spool.Dir)
	}
	if inMemory > 0 {
		s.a.log.Warn("shutting down with readings held only in memory (the spool could not be written): saving them to the spool if it can be written now, else they are lost",
			"readings", inMemory)
	}
}
