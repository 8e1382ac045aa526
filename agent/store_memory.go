package agent

// The store's memory: records the spool could not take, bounded by
// queue_bytes; the oldest are evicted first and reported as dropped.

import (
	"slices"
	"sort"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// evictLogEvery aggregates the log of readings dropped from a full memory
// buffer: one line per interval, not one per reading.
const evictLogEvery = 10 * time.Second

// evictions counts readings dropped from memory since the last log line.
type evictions struct {
	n           int
	first, last uint64
	loggedAt    time.Time
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
