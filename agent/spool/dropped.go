package spool

// Drop reports: the ranges of seqs the spool lost (full, corrupt, lost by
// the storage), kept in the cursor until a delivered message carried them.

// AddDropped records loss reports the caller carries over from elsewhere
// (a spool that was deleted, records that were only in memory), so they
// are persisted and handed out by TakeDropped like the spool's own. Give
// Incarnation when the seqs are not this spool's.
func (s *Spool) AddDropped(ranges ...DroppedRange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	for _, d := range ranges {
		if d.Incarnation == s.incHex {
			d.Incarnation = ""
		}
		s.taken = s.cur.addDropped(d, s.taken)
	}
	if len(ranges) == 0 {
		return nil
	}
	s.cursorDirty = true
	return s.persistCursor()
}

// Dropped returns every pending loss report, those TakeDropped returned
// included, with Incarnation set, changing nothing: for a caller that
// attaches them to each message until one is delivered (AckDropped).
func (s *Spool) Dropped() []DroppedRange {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DroppedRange, 0, len(s.cur.dropped))
	for _, d := range s.cur.dropped {
		out = append(out, s.resolve(d))
	}
	return out
}

// TakeDropped returns the drop reports not returned before by this Spool
// value. They stay in the cursor until AckDropped, so after a restart
// unacknowledged reports are returned again.
func (s *Spool) TakeDropped() []DroppedRange {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []DroppedRange
	for _, d := range s.cur.dropped[s.taken:] {
		out = append(out, s.resolve(d))
	}
	s.taken = len(s.cur.dropped)
	return out
}

// AckDropped forgets reports returned by TakeDropped once they have been
// published: the seqs of ranges are taken out of the pending reports (a
// caller may have published only part of a report). The change is
// persisted like acknowledgements.
func (s *Spool) AckDropped(ranges ...DroppedRange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ranges) == 0 || len(s.cur.dropped) == 0 {
		return
	}
	if s.cutDropped(func(d DroppedRange) []DroppedRange {
		out := []DroppedRange{d}
		for _, r := range ranges {
			out = SubtractSpan(out, r.First, r.Last)
		}
		return out
	}) {
		s.writeLive()
	}
}

// trimDelivered takes acknowledged seqs out of the pending loss reports:
// a record that was delivered after all (it was in a message in flight
// when its segment was dropped, say) must never be reported lost.
func (s *Spool) trimDelivered(seqs []uint64) bool {
	if len(s.cur.dropped) == 0 {
		return false
	}
	return s.cutDropped(func(d DroppedRange) []DroppedRange { return WithoutSeqs(d, seqs) })
}

// WithoutSeqs returns the pieces of d left once seqs are taken out of it.
func WithoutSeqs(d DroppedRange, seqs []uint64) []DroppedRange {
	out := []DroppedRange{d}
	for _, x := range seqs {
		if x >= d.First && x <= d.Last {
			out = SubtractSpan(out, x, x)
		}
	}
	return out
}

// cutDropped replaces each pending report by cut's pieces, in place, so
// the handed-out prefix stays the handed-out prefix.
func (s *Spool) cutDropped(cut func(DroppedRange) []DroppedRange) bool {
	var out []DroppedRange
	taken, changed := 0, false
	for i, d := range s.cur.dropped {
		pieces := cut(d)
		if len(pieces) != 1 || pieces[0] != d {
			changed = true
		}
		out = append(out, pieces...)
		if i < s.taken {
			taken += len(pieces)
		}
	}
	if !changed {
		return false
	}
	for len(out) > maxDropped { // a split can add one report
		taken = mergeOldest(&out, taken)
	}
	s.cur.dropped, s.taken, s.cursorDirty = out, taken, true
	return true
}

// SubtractSpan removes the seqs lo..hi from ranges, splitting a range
// they cut in two. A piece's Count is the smaller of the range's Count
// and the piece's span.
func SubtractSpan(ranges []DroppedRange, lo, hi uint64) []DroppedRange {
	var out []DroppedRange
	for _, d := range ranges {
		if hi < d.First || lo > d.Last {
			out = append(out, d)
			continue
		}
		if d.First < lo {
			p := d
			p.Last = lo - 1
			p.Count = min(d.Count, p.Last-p.First+1)
			out = append(out, p)
		}
		if d.Last > hi {
			p := d
			p.First = hi + 1
			p.Count = min(d.Count, p.Last-p.First+1)
			out = append(out, p)
		}
	}
	return out
}
