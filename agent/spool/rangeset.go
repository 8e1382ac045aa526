package spool

import "sort"

// seqRange is an inclusive range of sequence numbers.
type seqRange struct{ lo, hi uint64 }

func (r seqRange) len() uint64 { return r.hi - r.lo + 1 }

// rangeSet is a set of sequence numbers: everything up to the watermark w,
// plus sorted, disjoint, non-adjacent ranges above w+1. It holds the
// acknowledgements. Sequence numbers are below math.MaxUint64 (Append
// refuses that one), so hi+1 never overflows.
type rangeSet struct {
	w uint64
	r []seqRange
}

func (s *rangeSet) clone() rangeSet {
	return rangeSet{w: s.w, r: append([]seqRange(nil), s.r...)}
}

// add inserts [lo, hi] and reports whether the set changed.
func (s *rangeSet) add(lo, hi uint64) bool {
	if hi < lo || hi <= s.w {
		return false
	}
	if lo <= s.w+1 {
		s.w = hi
		s.absorb()
		return true
	}
	// i: first range that overlaps or touches [lo, hi] from the left.
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].hi+1 >= lo })
	j := i
	for j < len(s.r) && s.r[j].lo <= hi+1 {
		j++
	}
	if i == j {
		s.r = append(s.r, seqRange{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = seqRange{lo, hi}
		return true
	}
	merged := seqRange{min(lo, s.r[i].lo), max(hi, s.r[j-1].hi)}
	if j == i+1 && merged == s.r[i] {
		return false
	}
	s.r[i] = merged
	s.r = append(s.r[:i+1], s.r[j:]...)
	return true
}

// advance raises the watermark to w (never lowers it).
func (s *rangeSet) advance(w uint64) bool {
	if w <= s.w {
		return false
	}
	return s.add(0, w)
}

// absorb folds ranges that now touch the watermark into it.
func (s *rangeSet) absorb() {
	n := 0
	for n < len(s.r) && s.r[n].lo <= s.w+1 {
		s.w = max(s.w, s.r[n].hi)
		n++
	}
	if n > 0 {
		s.r = append(s.r[:0], s.r[n:]...)
	}
}

func (s *rangeSet) contains(x uint64) bool {
	if x <= s.w {
		return true
	}
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].hi >= x })
	return i < len(s.r) && s.r[i].lo <= x
}

// nextUncovered returns the smallest y >= x not in the set.
func (s *rangeSet) nextUncovered(x uint64) uint64 {
	if x <= s.w {
		x = s.w + 1
	}
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].hi >= x })
	if i < len(s.r) && s.r[i].lo <= x {
		x = s.r[i].hi + 1
	}
	return x
}

// covers reports whether every seq in [lo, hi] is in the set.
func (s *rangeSet) covers(lo, hi uint64) bool {
	return s.nextUncovered(lo) > hi
}

// countIn returns how many seqs of [lo, hi] are in the set.
func (s *rangeSet) countIn(lo, hi uint64) uint64 {
	if hi < lo {
		return 0
	}
	var n uint64
	if lo <= s.w {
		n += min(hi, s.w) - lo + 1
		lo = s.w + 1
		if hi < lo {
			return n
		}
	}
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].hi >= lo })
	for ; i < len(s.r) && s.r[i].lo <= hi; i++ {
		n += min(hi, s.r[i].hi) - max(lo, s.r[i].lo) + 1
	}
	return n
}

// max returns the highest seq in the set (the watermark if no ranges).
func (s *rangeSet) max() uint64 {
	if len(s.r) > 0 {
		return s.r[len(s.r)-1].hi
	}
	return s.w
}
