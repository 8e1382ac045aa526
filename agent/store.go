package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math"
	"slices"
	"sort"
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

// evictLogEvery aggregates the log of readings dropped from a full memory
// buffer: one line per interval, not one per reading.
const evictLogEvery = 10 * time.Second

// evictions counts readings dropped from memory since the last log line.
type evictions struct {
	n           int
	first, last uint64
	loggedAt    time.Time
}

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

// failLocked enters memory mode after an append failed.
func (s *store) failLocked(err error) {
	s.degraded, s.spErr = true, err
	s.retryAt = s.now().Add(spoolRetry)
	s.log.Error("spool cannot be written: keeping readings in memory until it can (they are lost if the agent stops)",
		"dir", s.opts.Dir, "err", err, "memory_limit_bytes", s.maxMem, "retry_in", spoolRetry.String())
}

// recoverLocked tries the spool again: opens it if it never opened, moves
// what memory holds into it, then recs, and reports whether recs are in
// the spool. With nothing to write nothing is learnt, so the state stays.
func (s *store) recoverLocked(recs []spool.Record) bool {
	s.retryAt = s.now().Add(spoolRetry)
	opened := false
	if s.sp == nil {
		sp, err := spool.Open(s.opts)
		if err != nil {
			s.spErr = err
			return false
		}
		s.sp, s.inc, s.rescued, opened = sp, sp.Incarnation(), 0, true
		s.log.Warn("spool opened at last", "dir", s.opts.Dir, "incarnation", s.inc)
		s.rebindLocked()
	}
	s.compactLocked()
	if len(s.mem) == 0 && len(recs) == 0 && !opened {
		return false
	}
	err := s.moveMemLocked()
	if err == nil && len(recs) > 0 {
		err = appendSplit(s.sp, recs)
	}
	if err != nil {
		if errors.Is(err, spool.ErrGone) {
			s.reincarnateLocked(err)
		}
		s.spErr = err
		return false
	}
	if s.spErr != nil {
		s.log.Warn("spool writable again: readings kept in memory moved to disk", "dir", s.opts.Dir, "still_in_memory", len(s.mem))
	}
	s.degraded, s.spErr = false, nil
	return len(recs) > 0
}

// moveMemLocked appends memory's records to the spool in groups, keeping
// only those the spool cannot take (numbered below what it holds), and
// hands it the loss reports memory kept.
func (s *store) moveMemLocked() error {
	s.compactLocked()
	last := s.sp.LastSeq()
	var stay []spool.Record
	var group []spool.Record
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		if err := appendSplit(s.sp, group); err != nil {
			return err
		}
		for _, r := range group {
			s.memBytes -= len(r.Data)
		}
		group = group[:0]
		return nil
	}
	for i, r := range s.mem {
		if r.Seq <= last {
			stay = append(stay, r)
			continue
		}
		group = append(group, r)
		if len(group) == maxGroup {
			if err := flush(); err != nil {
				s.mem = append(stay, s.mem[i+1-len(group):]...)
				return err
			}
		}
	}
	if err := flush(); err != nil {
		s.mem = append(stay, s.mem[len(s.mem)-len(group):]...)
		return err
	}
	s.mem = stay
	if len(s.dropped) > 0 {
		if err := s.sp.AddDropped(s.dropped...); err != nil {
			return err
		}
		s.dropped = nil
	}
	return nil
}

// reincarnateLocked replaces a spool that was deleted while in use: a new
// one is created in its place and what the old one held is moved there
// (read back from its files, which stay readable while open), keeping the
// incarnation it was numbered under. What cannot be read back is
// reported lost ("spool deleted").
func (s *store) reincarnateLocked(cause error) {
	old, oldInc, oldLast := s.sp, s.inc, s.sp.LastSeq()
	s.log.Error("the spool was deleted while the agent ran: recreating it and moving what it held there",
		"dir", s.opts.Dir, "err", cause)
	// Read back first: Salvage closes the old spool, and with it its
	// lock, which the new one takes.
	var carried []spool.Record
	lost, err := old.Salvage(func(r spool.Record) error {
		r.Data = tagged(r.Data, oldInc, false)
		carried = append(carried, r)
		return nil
	})
	if err != nil {
		s.log.Error("reading back the deleted spool", "err", err)
	}
	// What is left of it by name (only some files were deleted) was
	// read back: a new spool must not adopt it.
	if err := spool.Discard(s.opts.Dir, s.opts.FS); err != nil {
		s.log.Error("removing what is left of the deleted spool", "dir", s.opts.Dir, "err", err)
	}
	s.sp, s.inc, s.rescued = nil, "", 0
	fresh, err := spool.Open(s.opts)
	if err != nil {
		s.spErr, s.degraded = err, true
		s.retryAt = s.now().Add(spoolRetry)
	} else {
		s.sp, s.inc, s.degraded, s.spErr = fresh, fresh.Incarnation(), false, nil
	}
	moved, inMem := 0, 0
	for len(carried) > 0 {
		group := carried[:min(len(carried), maxGroup)]
		carried = carried[len(group):]
		if s.sp != nil && !s.degraded {
			if err := appendSplit(s.sp, group); err == nil {
				moved += len(group)
				continue
			} else {
				s.failLocked(err)
			}
		}
		inMem += len(group)
		s.addMemLocked(group)
	}
	s.dropped = append(s.dropped, lost...)
	var n uint64
	for _, d := range lost {
		if d.Reason == spool.DropDeleted {
			n += d.Count
		}
	}
	if s.sp != nil {
		s.rebindLocked(oldLast)
		if !s.degraded {
			if err := s.moveMemLocked(); err != nil {
				s.failLocked(err)
			}
		}
	}
	s.log.Warn("spool recreated", "dir", s.opts.Dir, "incarnation", s.inc, "old_incarnation", oldInc,
		"moved_to_disk", moved, "kept_in_memory", inMem, "lost", n)
}

// appendSplit appends recs, in smaller groups when a group does not fit
// in a segment (a spool made small by a nearly full disk).
func appendSplit(sp *spool.Spool, recs []spool.Record) error {
	err := sp.Append(recs)
	if errors.Is(err, spool.ErrTooLarge) && len(recs) > 1 {
		h := len(recs) / 2
		if err = appendSplit(sp, recs[:h]); err == nil {
			err = appendSplit(sp, recs[h:])
		}
	}
	return err
}

// rebindLocked moves the sequence counter to the spool now open.
func (s *store) rebindLocked(lasts ...uint64) {
	if s.rebind == nil {
		return
	}
	last := s.sp.LastSeq()
	for _, l := range lasts {
		last = max(last, l)
	}
	if n := len(s.mem); n > 0 {
		last = max(last, s.mem[n-1].Seq)
	}
	if err := s.rebind(s.inc, last); err != nil {
		s.log.Error("cannot write the sequence counter for the new spool", "err", err)
	}
}

// addMemLocked keeps tagged records in memory, dropping the oldest beyond
// the limit (reported, and logged once per evictLogEvery).
func (s *store) addMemLocked(recs []spool.Record) {
	for _, r := range recs {
		if n := len(s.mem); n > 0 && r.Seq <= s.mem[n-1].Seq {
			// Carried records may be older than what memory holds.
			i := sort.Search(n, func(i int) bool { return s.mem[i].Seq >= r.Seq })
			s.mem = slices.Insert(s.mem, i, r)
		} else {
			s.mem = append(s.mem, r)
		}
		s.memBytes += len(r.Data)
	}
	for s.memBytes > s.maxMem && len(s.mem) > 1 {
		old := s.mem[0]
		s.mem = s.mem[1:]
		s.memBytes -= len(old.Data)
		if s.acked[memKey(old)] {
			delete(s.acked, memKey(old))
			continue
		}
		h, _, _ := SplitRecord(old.Data)
		s.addDroppedLocked(old.Seq, h.Incarnation)
	}
}

func (s *store) addDroppedLocked(seq uint64, inc string) {
	if n := len(s.dropped); n > 0 {
		d := &s.dropped[n-1]
		if d.Reason == spool.DropMemory && d.Incarnation == inc && d.Last+1 == seq {
			d.Last, d.Count = seq, d.Count+1
			s.countEvicted(seq)
			return
		}
	}
	s.dropped = append(s.dropped, spool.DroppedRange{First: seq, Last: seq, Count: 1, Reason: spool.DropMemory, Incarnation: inc})
	s.countEvicted(seq)
}

func (s *store) countEvicted(seq uint64) {
	if s.ev.n == 0 {
		s.ev.first = seq
	}
	s.ev.n++
	s.ev.last = seq
	if s.now().Sub(s.ev.loggedAt) >= evictLogEvery {
		s.logEvictedLocked()
	}
}

func (s *store) logEvictedLocked() {
	if s.ev.n == 0 {
		return
	}
	s.log.Error("memory buffer full (publish.queue_bytes): dropped the oldest readings held in memory; they are reported in the next message's dropped field",
		"readings", s.ev.n, "seq_first", s.ev.first, "seq_last", s.ev.last, "memory_limit_bytes", s.maxMem)
	s.ev = evictions{loggedAt: s.now()}
}

// compactLocked removes acknowledged records from memory.
func (s *store) compactLocked() {
	if len(s.acked) == 0 {
		return
	}
	kept := s.mem[:0]
	s.memBytes = 0
	for _, r := range s.mem {
		if !s.acked[memKey(r)] {
			kept = append(kept, r)
			s.memBytes += len(r.Data)
		}
	}
	clear(s.mem[len(kept):])
	s.mem = kept
	clear(s.acked)
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

// rescueUnsyncedLocked moves the records the spool could not make durable
// to memory, under the volatile incarnation, and acknowledges them in the
// spool. A disk whose sync fails may lose them when it is checked and
// repaired, as in a power cut, and a later run would then number other
// readings with their seqs; published from memory under an incarnation
// of their own, they stay unique, and are not published twice.
func (s *store) rescueUnsyncedLocked(cause error) {
	from := max(s.sp.SyncedSeq(), s.rescued)
	last := s.sp.LastSeq()
	if last <= from {
		return
	}
	var recs []spool.Record
	if err := s.sp.Pending(from, 0, func(r spool.Record) bool {
		recs = append(recs, r)
		return true
	}); err != nil {
		s.log.Error("reading back the records the spool could not sync", "err", err)
		return
	}
	s.rescued = last
	if len(recs) == 0 {
		return
	}
	s.spErr = cause
	seqs := make([]uint64, len(recs))
	for i := range recs {
		seqs[i] = recs[i].Seq
		recs[i].Data = tagged(recs[i].Data, s.volatile, true)
	}
	s.sp.Ack(seqs...)
	s.addMemLocked(recs)
	s.log.Warn("the spool cannot make its newest readings durable: they are kept in memory and published from there under the volatile incarnation",
		"readings", len(recs), "seq_first", seqs[0], "seq_last", seqs[len(seqs)-1], "from_incarnation", s.inc,
		"incarnation", s.volatile, "dir", s.opts.Dir)
}

// frontierLocked is the highest seq that may be published: records on
// disk are published only once they are durable, so that a number a
// crash or a failing disk could take back was never seen by anyone.
func (s *store) frontierLocked() uint64 {
	if s.sp == nil {
		return math.MaxUint64
	}
	done := max(s.sp.SyncedSeq(), s.rescued)
	if s.sp.LastSeq() > done {
		return done
	}
	return math.MaxUint64
}

// Pending calls fn for unacknowledged records with seq > after, in seq
// order across the spool and memory, with the incarnation untagged
// records were numbered under. Records above the durable frontier wait:
// it returns the frontier it used, so a caller that found nothing knows
// whether records may still appear below it (frontier below its range).
func (s *store) Pending(after uint64, limit int, fn func(r spool.Record, inc string) bool) (frontier uint64, err error) {
	s.mu.Lock()
	sp, inc := s.sp, s.inc
	frontier = s.frontierLocked()
	// The spool is read without the lock: records the writer appends or
	// moves there meanwhile have higher seqs, and come from the memory
	// snapshot or the next call, never twice.
	spLast := uint64(0)
	if sp != nil {
		spLast = sp.LastSeq()
	}
	i := sort.Search(len(s.mem), func(i int) bool { return s.mem[i].Seq > after })
	var mem []spool.Record
	for _, r := range s.mem[i:] {
		if len(mem) >= limit || r.Seq > frontier {
			break
		}
		if !s.acked[memKey(r)] {
			mem = append(mem, r)
		}
	}
	s.mu.Unlock()
	n, stopped := 0, false
	emit := func(r spool.Record, inc string) bool {
		n++
		if !fn(r, inc) {
			stopped = true
		}
		return !stopped && n < limit
	}
	if sp != nil {
		upto := min(frontier, spLast)
		err := sp.Pending(after, limit, func(r spool.Record) bool {
			if r.Seq > upto {
				return false
			}
			for len(mem) > 0 && mem[0].Seq < r.Seq {
				if !emit(mem[0], "") {
					return false
				}
				mem = mem[1:]
			}
			return emit(r, inc)
		})
		if errors.Is(err, spool.ErrClosed) {
			// Replaced meanwhile (deleted and recreated): what it held
			// is in the new one; read again rather than skip past it.
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
	}
	for len(mem) > 0 && !stopped && n < limit {
		emit(mem[0], "")
		mem = mem[1:]
	}
	return frontier, nil
}

// Counts returns the records not yet acknowledged: in the spool, and held
// only in memory.
func (s *store) Counts() (inSpool, inMemory int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sp != nil {
		inSpool = s.sp.Stats().Pending
	}
	for _, r := range s.mem {
		if !s.acked[memKey(r)] {
			inMemory++
		}
	}
	return inSpool, inMemory
}

// PendingCount is the number of records not yet acknowledged.
func (s *store) PendingCount() int64 {
	a, b := s.Counts()
	return a + b
}

// ackKey names a memory record: its incarnation and seq. Two records of
// different incarnations may share a seq (one carried over from memory
// into a spool that already numbered past it), and delivering one must
// not acknowledge the other.
type ackKey struct {
	inc string
	seq uint64
}

func memKey(r spool.Record) ackKey {
	h, _, _ := SplitRecord(r.Data)
	return ackKey{h.Incarnation, r.Seq}
}

// Ack marks the records of a delivered message as delivered: seqs, of
// incarnation inc ("" or the spool's for the spool's own records).
func (s *store) Ack(inc string, seqs []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	spoolSeqs := seqs
	if len(s.mem) > 0 && inc != "" && inc != s.inc {
		spoolSeqs = nil
		for _, q := range seqs {
			if s.inMemLocked(ackKey{inc, q}) {
				s.acked[ackKey{inc, q}] = true
			} else {
				spoolSeqs = append(spoolSeqs, q) // tagged, and moved to disk
			}
		}
		if len(s.acked) > len(s.mem)/2 {
			s.compactLocked()
		}
	}
	if s.sp != nil && len(spoolSeqs) > 0 {
		s.sp.Ack(spoolSeqs...) // also takes them out of its loss reports
	}
	// A record the memory bound pushed out may still have been in a batch
	// the sender held: delivered after all, so not reported as lost.
	if len(s.dropped) > 0 {
		s.dropped = withoutSeqs(s.dropped, inc, seqs)
	}
}

// inMemLocked says whether memory holds the record k.
func (s *store) inMemLocked(k ackKey) bool {
	i := sort.Search(len(s.mem), func(i int) bool { return s.mem[i].Seq >= k.seq })
	for ; i < len(s.mem) && s.mem[i].Seq == k.seq; i++ {
		if memKey(s.mem[i]) == k {
			return true
		}
	}
	return false
}

// Dropped returns the losses not yet reported (the spool's and memory's),
// each with its incarnation. They stay until AckDropped.
func (s *store) Dropped() []spool.DroppedRange {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []spool.DroppedRange
	if s.sp != nil {
		out = s.sp.Dropped()
	}
	return append(out, s.dropped...)
}

// AckDropped records that ranges were reported in a delivered message.
func (s *store) AckDropped(r []spool.DroppedRange) {
	if len(r) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sp != nil {
		s.sp.AckDropped(r...)
	}
	for _, d := range r {
		s.dropped = spool.SubtractSpan(s.dropped, d.First, d.Last)
	}
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

// withoutSeqs removes the seqs of incarnation inc from the ranges,
// splitting them as needed. Ranges of other incarnations are kept.
func withoutSeqs(ranges []spool.DroppedRange, inc string, seqs []uint64) []spool.DroppedRange {
	if len(ranges) == 0 || len(seqs) == 0 {
		return ranges
	}
	var out []spool.DroppedRange
	for _, d := range ranges {
		if inc != "" && d.Incarnation != "" && d.Incarnation != inc {
			out = append(out, d)
			continue
		}
		out = append(out, spool.WithoutSeqs(d, seqs)...)
	}
	return out
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
