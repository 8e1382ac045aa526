package agent

// What the sender reads of the store: the records not yet acknowledged,
// in seq order across spool and memory, and the losses to report.

import (
	"errors"
	"math"
	"sort"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

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
