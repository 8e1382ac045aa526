package spool

// Acknowledgements: what the sender has delivered, kept in the cursor.

import (
	"os"
	"path/filepath"
	"sort"
)

// Ack acknowledges records by seq (in any order; seqs above LastSeq are
// ignored). It only updates memory; Sync persists it lazily.
func (s *Spool) Ack(seqs ...uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for _, x := range seqs {
		if x > 0 && x <= s.lastSeq && s.cur.acks.add(x, x) {
			changed = true
		}
	}
	// A dropped record is acknowledged already; its report still goes.
	if s.trimDelivered(seqs) {
		changed = true
	}
	if changed {
		s.cursorDirty = true
		s.normalize()
		s.writeLive()
	}
}

// writeLive overwrites cursor.live in place, without fsync: after a
// process crash the acknowledgements are all there, so few records are
// sent twice. A failure only costs duplicates after a crash.
func (s *Spool) writeLive() {
	if s.readOnly || s.closed || s.goneErr != nil {
		return
	}
	if s.liveF == nil {
		f, err := s.fs.OpenFile(filepath.Join(s.dir, liveCursorName), os.O_RDWR|os.O_CREATE, 0o640)
		if err != nil {
			return
		}
		s.liveF = f
	}
	s.gen++
	s.cur.gen = s.gen
	c := s.cur
	c.lastSeq, c.syncedSeq = s.lastSeq, s.durable
	s.liveBuf = encodeLive(s.liveBuf, s.inc, &c)
	_, _ = s.liveF.WriteAt(s.liveBuf, 0)
	if cap(s.liveBuf) > keepBufferCap {
		s.liveBuf = nil
	}
}

// AckRange acknowledges every record with first <= seq <= last.
func (s *Spool) AckRange(first, last uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last = min(last, s.lastSeq)
	if first == 0 {
		first = 1
	}
	if s.cur.acks.add(first, last) {
		s.cursorDirty = true
		s.normalize()
		s.writeLive()
	}
}

// normalize raises the watermark to just below the oldest unacknowledged
// record: seqs below it are acknowledged or were never appended (the
// agent's counter skips ahead after a restart), and no seq at or below
// LastSeq can be appended any more.
//
// Likewise two acknowledged ranges with no record between them are
// merged, so the set stays as small as the pattern of pending records
// allows (per-topic batches acknowledge every n-th seq) and the 64
// ranges the cursor keeps go further.
func (s *Spool) normalize() {
	w := s.lastSeq
	if x, ok := s.oldestPending(); ok {
		w = x - 1
	}
	for _, u := range s.unreadable {
		w = min(w, u.lo-1)
	}
	changed := s.cur.acks.advance(w)
	if r := s.cur.acks.r; len(r) > 1 {
		out := r[:1]
		for _, x := range r[1:] {
			if last := &out[len(out)-1]; !s.hasRecord(last.hi+1, x.lo-1) {
				last.hi, changed = x.hi, true
			} else {
				out = append(out, x)
			}
		}
		clear(r[len(out):])
		s.cur.acks.r = out
	}
	if changed {
		s.cursorDirty = true
	}
}

// hasRecord reports whether any record has lo <= seq <= hi, counting
// the unreadable ranges as records.
func (s *Spool) hasRecord(lo, hi uint64) bool {
	for _, u := range s.unreadable {
		if u.lo <= hi && lo <= u.hi {
			return true
		}
	}
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].last >= lo })
	for ; i < len(s.segs) && s.segs[i].first <= hi; i++ {
		runs := s.segs[i].runs
		j := sort.Search(len(runs), func(j int) bool { return runs[j].hi >= lo })
		if j < len(runs) && runs[j].lo <= hi {
			return true
		}
	}
	return false
}

// oldestPending returns the lowest unacknowledged record seq.
func (s *Spool) oldestPending() (uint64, bool) {
	for _, seg := range s.segs {
		if seg.last <= s.cur.acks.w {
			continue
		}
		for _, r := range seg.runs {
			if r.hi <= s.cur.acks.w {
				continue
			}
			if x := s.cur.acks.nextUncovered(r.lo); x <= r.hi {
				return x, true
			}
		}
	}
	return 0, false
}
