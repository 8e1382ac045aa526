package agent

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// durable is what the agent needs of the spool (*spool.Spool).
type durable interface {
	Append(recs []spool.Record) error
	Sync() error
	SyncedSeq() uint64
	Ack(seqs ...uint64)
	Pending(after uint64, max int, fn func(spool.Record) bool) error
	LastSeq() uint64
	TakeDropped() []spool.DroppedRange
	AckDropped(...spool.DroppedRange)
	Incarnation() string
	Stats() spool.Stats
	Close() error
}

// store is the spool plus an in-memory fallback for when the disk cannot
// take writes (full, read-only, failing): sampling never stops and never
// crashes the agent; readings wait in memory, bounded by queue_bytes, and
// move to the spool when it works again.
type store struct {
	log *slog.Logger
	sp  durable // nil when the spool could not be opened at all

	mu       sync.Mutex
	degraded bool
	retryAt  time.Time
	mem      []spool.Record // not in the spool, seq ascending
	memBytes int
	maxMem   int
	dropped  []spool.DroppedRange // lost from memory, not yet reported
	acked    map[uint64]bool      // acked memory records (removed lazily)
}

// spoolRetry is how often a failing spool is tried again.
const spoolRetry = 30 * time.Second

func newStore(sp durable, maxMem int, log *slog.Logger) *store {
	return &store{sp: sp, maxMem: maxMem, log: log, degraded: sp == nil, acked: map[uint64]bool{}}
}

// Append stores recs: in the spool, or in memory when it fails.
func (s *store) Append(recs []spool.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sp != nil && (!s.degraded || !time.Now().Before(s.retryAt)) {
		all := recs
		if s.degraded {
			s.compactLocked()
			all = append(append([]spool.Record(nil), s.mem...), recs...)
		}
		err := s.sp.Append(all)
		if err == nil {
			if s.degraded {
				s.log.Warn("spool writable again: readings kept in memory moved to disk", "readings", len(s.mem))
				s.degraded, s.mem, s.memBytes = false, nil, 0
				clear(s.acked)
			}
			return
		}
		if !s.degraded {
			s.log.Error("spool cannot be written: keeping readings in memory until it can (they are lost if the agent stops)",
				"err", err, "memory_limit_bytes", s.maxMem, "retry_in", spoolRetry.String())
		}
		if !errors.Is(err, spool.ErrUnavailable) {
			s.log.Error("spool append", "err", err)
		}
		s.degraded = true
		s.retryAt = time.Now().Add(spoolRetry)
	}
	for _, r := range recs {
		s.mem = append(s.mem, r)
		s.memBytes += len(r.Data)
	}
	for s.memBytes > s.maxMem && len(s.mem) > 1 {
		old := s.mem[0]
		s.mem = s.mem[1:]
		s.memBytes -= len(old.Data)
		if s.acked[old.Seq] {
			delete(s.acked, old.Seq)
			continue
		}
		s.log.Error("memory buffer full: dropped the oldest reading", "seq", old.Seq)
		if n := len(s.dropped); n > 0 && s.dropped[n-1].Last+1 == old.Seq {
			s.dropped[n-1].Last = old.Seq
			s.dropped[n-1].Count++
		} else {
			s.dropped = append(s.dropped, spool.DroppedRange{First: old.Seq, Last: old.Seq, Count: 1, Reason: spool.DropMemory})
		}
	}
}

// compactLocked removes acknowledged records from memory.
func (s *store) compactLocked() {
	if len(s.acked) == 0 {
		return
	}
	kept := s.mem[:0]
	s.memBytes = 0
	for _, r := range s.mem {
		if !s.acked[r.Seq] {
			kept = append(kept, r)
			s.memBytes += len(r.Data)
		}
	}
	s.mem = kept
	clear(s.acked)
}

// Sync makes the spool durable; memory cannot be.
func (s *store) Sync() (synced uint64, err error) {
	if s.sp == nil {
		return 0, nil
	}
	if err := s.sp.Sync(); err != nil {
		return s.sp.SyncedSeq(), err
	}
	return s.sp.SyncedSeq(), nil
}

// Pending calls fn for unacknowledged records with seq > after, oldest
// first: the spool's, then memory's.
func (s *store) Pending(after uint64, limit int, fn func(spool.Record) bool) error {
	n := 0
	stopped := false
	if s.sp != nil {
		err := s.sp.Pending(after, limit, func(r spool.Record) bool {
			n++
			after = max(after, r.Seq)
			if !fn(r) {
				stopped = true
				return false
			}
			return true
		})
		if err != nil || stopped || n >= limit {
			return err
		}
	}
	s.mu.Lock()
	var recs []spool.Record
	for _, r := range s.mem {
		if r.Seq > after && !s.acked[r.Seq] && n+len(recs) < limit {
			recs = append(recs, r)
		}
	}
	s.mu.Unlock()
	for _, r := range recs {
		if !fn(r) {
			break
		}
	}
	return nil
}

// PendingCount is the number of records not yet acknowledged, without
// reading them.
func (s *store) PendingCount() int64 {
	var n int64
	if s.sp != nil {
		n = s.sp.Stats().Pending
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.mem {
		if !s.acked[r.Seq] {
			n++
		}
	}
	return n
}

// Ack marks records as delivered.
func (s *store) Ack(seqs []uint64) {
	if s.sp != nil {
		s.sp.Ack(seqs...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A record the memory bound pushed out may still have been in a batch
	// the sender held: delivered after all, so not reported as lost.
	// (Spool ranges are kept whole: the spool acknowledges its reports by
	// value.)
	var mem, other []spool.DroppedRange
	for _, d := range s.dropped {
		if d.Reason == spool.DropMemory {
			mem = append(mem, d)
		} else {
			other = append(other, d)
		}
	}
	s.dropped = append(other, withoutSeqs(mem, seqs)...)
	if len(s.mem) > 0 {
		for _, q := range seqs {
			if q >= s.mem[0].Seq {
				s.acked[q] = true
			}
		}
		if len(s.acked) > len(s.mem)/2 {
			s.compactLocked()
		}
	}
}

// Dropped returns the lost ranges not yet reported.
func (s *store) Dropped() []spool.DroppedRange {
	var out []spool.DroppedRange
	if s.sp != nil {
		out = s.sp.TakeDropped()
	}
	s.mu.Lock()
	out = append(out, s.dropped...)
	s.dropped = nil
	s.mu.Unlock()
	return out
}

// AckDropped records that ranges were reported in a delivered message.
func (s *store) AckDropped(r []spool.DroppedRange) {
	if s.sp != nil && len(r) > 0 {
		s.sp.AckDropped(r...)
	}
}

// ReturnDropped puts back ranges whose report was not delivered.
func (s *store) ReturnDropped(r []spool.DroppedRange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropped = append(r, s.dropped...)
}

// LastSeq is the highest seq stored.
func (s *store) LastSeq() uint64 {
	var last uint64
	if s.sp != nil {
		last = s.sp.LastSeq()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.mem); n > 0 {
		last = max(last, s.mem[n-1].Seq)
	}
	return last
}

// Incarnation identifies this spool's life; "" without a spool.
func (s *store) Incarnation() string {
	if s.sp == nil {
		return ""
	}
	return s.sp.Incarnation()
}

// Close syncs and closes the spool; memory contents are reported lost.
func (s *store) Close() error {
	s.mu.Lock()
	s.compactLocked()
	n := len(s.mem)
	s.mu.Unlock()
	if n > 0 {
		s.log.Error("readings held in memory (spool not writable) are lost at exit", "readings", n)
	}
	if s.sp == nil {
		return nil
	}
	return s.sp.Close()
}

// withoutSeqs removes seqs from the ranges, splitting them as needed.
// Ranges with no seq in them are kept as they are.
func withoutSeqs(ranges []spool.DroppedRange, seqs []uint64) []spool.DroppedRange {
	if len(ranges) == 0 || len(seqs) == 0 {
		return ranges
	}
	sorted := slices.Clone(seqs)
	slices.Sort(sorted)
	var out []spool.DroppedRange
	for _, r := range ranges {
		lo, _ := slices.BinarySearch(sorted, r.First)
		if lo == len(sorted) || sorted[lo] > r.Last {
			out = append(out, r)
			continue
		}
		next := r.First
		for _, q := range sorted[lo:] {
			if q > r.Last {
				break
			}
			if q > next {
				out = append(out, spool.DroppedRange{First: next, Last: q - 1, Count: q - next, Reason: r.Reason})
			}
			next = q + 1
		}
		if next <= r.Last {
			out = append(out, spool.DroppedRange{First: next, Last: r.Last, Count: r.Last - next + 1, Reason: r.Reason})
		}
	}
	return out
}
