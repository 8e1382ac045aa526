package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// store is the spool plus an in-memory fallback for when the disk cannot
// take writes (full, read-only, failing, deleted): sampling never stops
// and never crashes the agent; readings wait in memory, bounded by
// queue_bytes, and move to the spool when it works again.
//
// A reading that is not in the spool carries the agent's volatile
// incarnation (see record.go): its seq was numbered for a spool that never
// got it, so a later run may number another reading with it; under an
// incarnation of its own, (device, incarnation, seq) stays unique.
type store struct {
	log      *slog.Logger
	opts     spool.Options // to open the spool again
	volatile string        // this run's volatile incarnation
	maxMem   int
	now      func() time.Time
	// rebind makes the sequence counter follow a spool opened late or
	// recreated: numbers go on above last under the new incarnation.
	rebind func(inc string, last uint64) error

	mu       sync.Mutex
	sp       *spool.Spool // nil while it cannot be opened
	inc      string       // sp's incarnation
	spErr    error        // why the spool is not usable
	degraded bool         // appends go to memory
	retryAt  time.Time
	mem      []spool.Record // not in the spool, seq ascending, every one tagged
	memBytes int
	acked    map[ackKey]bool      // acknowledged memory records (removed lazily)
	dropped  []spool.DroppedRange // losses not (yet) in a spool's cursor, Incarnation set
	lastRO   uint64               // the spool's last seq seen read-only, when it cannot be opened
	rescued  uint64               // unsynced spool records up to this were moved to memory
	ev       evictions
}

// spoolRetry is how often a failing spool is tried again.
const spoolRetry = 10 * time.Second

// openStore opens the spool in o.Dir. A spool that cannot be opened is not
// fatal (readings are kept in memory and the spool is tried again), except
// when another process holds it (spool.ErrLocked).
func openStore(o spool.Options, maxMem int, log *slog.Logger, now func() time.Time) (*store, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	o.Tag = recordIncarnation // loss reports name whose readings they were
	s := &store{log: log, opts: o, volatile: hex.EncodeToString(id[:]), maxMem: maxMem, now: now,
		acked: map[ackKey]bool{}}
	sp, err := spool.Open(o)
	if errors.Is(err, spool.ErrLocked) {
		return nil, err
	}
	if err != nil {
		s.spErr, s.degraded = err, true
		s.retryAt = now().Add(spoolRetry)
		// Numbers in memory should stay above what the spool holds, so
		// that they can move there later.
		if st, rerr := spool.ReadStats(o.Dir, o.FS); rerr == nil {
			s.lastRO = st.LastSeq
		}
		log.Error("spool unavailable: readings are kept in memory only, up to publish.queue_bytes, and lost if the agent stops; trying again every "+spoolRetry.String(),
			"dir", o.Dir, "err", err)
		return s, nil
	}
	s.sp, s.inc = sp, sp.Incarnation()
	return s, nil
}

// Append stores recs: in the spool, or in memory when it fails. Untagged
// records are numbered for the spool; those that go to memory are tagged
// with the volatile incarnation.
func (s *store) Append(recs []spool.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.due() && s.recoverLocked(recs) {
		s.logStored(recs, "spool", s.inc)
		return
	}
	if s.sp != nil && !s.degraded {
		err := appendSplit(s.sp, recs)
		if errors.Is(err, spool.ErrGone) {
			s.reincarnateLocked(err)
			if s.sp != nil && !s.degraded {
				err = appendSplit(s.sp, recs)
			}
		}
		if err == nil {
			s.logStored(recs, "spool", s.inc)
			return
		}
		if s.sp != nil && !s.degraded {
			s.failLocked(err)
		}
	}
	for i := range recs {
		recs[i].Data = tagged(recs[i].Data, s.volatile, true)
	}
	s.addMemLocked(recs)
	s.logStored(recs, "memory", s.volatile)
}

// due says the spool should be tried again.
func (s *store) due() bool {
	return s.degraded && !s.now().Before(s.retryAt)
}

// Sync makes the spool durable (memory cannot be), notices a deleted
// spool, retries a failing one, and logs aggregated drops.
func (s *store) Sync() (synced uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.due() {
		s.recoverLocked(nil)
	}
	if s.now().Sub(s.ev.loggedAt) >= evictLogEvery {
		s.logEvictedLocked()
	}
	if s.sp == nil {
		return 0, nil
	}
	err = s.sp.Sync()
	if errors.Is(err, spool.ErrGone) {
		s.reincarnateLocked(err)
		if s.sp == nil {
			return 0, nil
		}
		err = s.sp.Sync()
	}
	if errors.Is(err, spool.ErrUnavailable) {
		s.rescueUnsyncedLocked(err)
	}
	if err == nil && !s.degraded && len(s.dropped) > 0 {
		// Losses kept in memory go to the cursor, to survive a crash.
		if aerr := s.sp.AddDropped(s.dropped...); aerr == nil {
			s.dropped = nil
		}
	}
	if s.degraded && errors.Is(err, spool.ErrUnavailable) {
		// Known and logged when memory mode began.
		err = nil
	}
	return s.sp.SyncedSeq(), err
}

// LastSeq is the highest seq stored.
func (s *store) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.lastRO
	if s.sp != nil {
		last = max(last, s.sp.LastSeq())
	}
	if n := len(s.mem); n > 0 {
		last = max(last, s.mem[n-1].Seq)
	}
	return last
}

// Incarnation identifies the spool's life; "" without a spool.
func (s *store) Incarnation() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inc
}

// Volatile is this run's incarnation for readings not in the spool.
func (s *store) Volatile() string { return s.volatile }

// Close moves what memory holds to the spool if it can be written now,
// then syncs and closes it. What is left only in memory is lost: it says
// so, with the number and why.
func (s *store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sp != nil {
		// Deleted since the last sync: carry what it held first.
		if err := s.sp.Sync(); errors.Is(err, spool.ErrGone) {
			s.reincarnateLocked(err)
		}
	}
	if s.degraded {
		s.recoverLocked(nil)
	}
	s.compactLocked()
	s.logEvictedLocked()
	// One line per incarnation, so each loss can be told from others.
	byInc := map[string][]uint64{}
	var incs []string
	for _, r := range s.mem {
		h, _, _ := SplitRecord(r.Data)
		if byInc[h.Incarnation] == nil {
			incs = append(incs, h.Incarnation)
		}
		byInc[h.Incarnation] = append(byInc[h.Incarnation], r.Seq)
	}
	for _, inc := range incs {
		seqs := byInc[inc]
		s.log.Error("readings held only in memory are lost now: the spool could not be written, so they were not saved and will not be sent after a restart",
			"readings", len(seqs), "seq_first", seqs[0], "seq_last", seqs[len(seqs)-1], "incarnation", inc,
			"dir", s.opts.Dir, "cause", s.spErr)
	}
	if len(s.dropped) > 0 && (s.sp == nil || s.degraded) {
		var n uint64
		for _, d := range s.dropped {
			n += d.Count
		}
		s.log.Error("earlier losses not yet reported to the cloud are only in memory and are not reported after a restart",
			"readings", n, "ranges", len(s.dropped))
	}
	if s.sp == nil {
		return nil
	}
	if len(s.dropped) > 0 && !s.degraded {
		if err := s.sp.AddDropped(s.dropped...); err != nil {
			s.log.Error("earlier losses not yet reported to the cloud could not be saved and are not reported after a restart",
				"ranges", len(s.dropped), "err", err)
		}
	}
	return s.sp.Close()
}

// logStored logs each stored group at debug level: the torture test
// accounts for every reading taken with these lines.
func (s *store) logStored(recs []spool.Record, where, inc string) {
	if len(recs) == 0 || !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	start := 0
	for i := 1; i <= len(recs); i++ {
		if i < len(recs) && sameTag(recs[i].Data, recs[start].Data) {
			continue
		}
		h, _, _ := SplitRecord(recs[start].Data)
		tag := h.Incarnation
		if tag == "" {
			tag = inc
		}
		s.log.Debug("stored", "first", recs[start].Seq, "last", recs[i-1].Seq, "count", i-start,
			"in", where, "incarnation", tag, "volatile", h.Volatile)
		start = i
	}
}

func sameTag(a, b []byte) bool {
	x, _, _ := SplitRecord(a)
	y, _, _ := SplitRecord(b)
	return x.Incarnation == y.Incarnation && x.Volatile == y.Volatile
}

// reconfigure applies a reloaded config's limits.
func (s *store) reconfigure(maxMem int, maxBytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxMem, s.opts.MaxBytes = maxMem, maxBytes
	if s.sp != nil {
		s.sp.SetMaxBytes(maxBytes)
	}
}

// adopt takes over the memory of a store closed by a reload.
func (s *store) adopt(c carried) {
	if len(c.recs) == 0 && len(c.dropped) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addMemLocked(c.recs)
	s.dropped = append(s.dropped, c.dropped...)
	// Move them to this spool at the next append.
	s.degraded, s.retryAt = true, time.Time{}
}

// release closes the store for a reload that moves it elsewhere and
// returns what only memory holds, so the next store keeps it.
func (s *store) release() carried {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.degraded && s.sp != nil {
		s.recoverLocked(nil)
	}
	s.compactLocked()
	c := carried{recs: s.mem, dropped: s.dropped}
	s.mem, s.dropped, s.memBytes = nil, nil, 0
	if s.sp != nil {
		if err := s.sp.Close(); err != nil {
			s.log.Error("closing the spool", "err", err)
		}
		s.sp = nil
	}
	return c
}
