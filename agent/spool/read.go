package spool

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"
)

// Pending calls fn for the unacknowledged records with seq > after,
// oldest first, until fn returns false, max records have been passed
// (max <= 0: no limit) or none is left. It is meant for draining a
// backlog: call it again with after = the last seq seen.
//
// Records are read from the segment files (normally the page cache) and
// the not-yet-synced tail from memory. A call starts at the segment and
// the sparse-index entry for after, so it never rescans the spool from
// the start. The spool is not locked while fn runs (records are read in
// bounded batches), so fn may call other methods; Data is fn's to keep.
func (s *Spool) Pending(after uint64, max int, fn func(Record) bool) error {
	n := 0
	for {
		limit := pendingBatch
		if max > 0 {
			limit = min(limit, max-n)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		recs, more, err := s.readPending(after, limit)
		s.mu.Unlock()
		for _, r := range recs {
			n++
			if !fn(r) {
				return nil
			}
			after = r.Seq
		}
		if err != nil || !more || max > 0 && n >= max {
			return err
		}
	}
}

// readPending reads up to limit unacknowledged records after after.
func (s *Spool) readPending(after uint64, limit int) (out []Record, more bool, err error) {
	if after == math.MaxUint64 {
		return nil, false, nil
	}
	start := s.cur.acks.nextUncovered(after + 1)
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].last >= start })
	// Sized for a second of live readings (the common call: the sender
	// after each sync); both grow as needed for a backlog.
	arena := make([]byte, 0, min(limit, 16)*256)
	out = make([]Record, 0, min(limit, 16))
	for ; i < len(s.segs); i++ {
		seg := s.segs[i]
		r, err := s.reader(seg)
		if err != nil {
			return out, false, fmt.Errorf("%w: read %s: %w", ErrUnavailable, seg.path, err)
		}
		b := bounds{hi: seg.hi}
		off, prev := seg.locate(start)
		b.prev = prev
		w := newWindow(r, seg.end, s.rbuf)
		for {
			seq, data, at, _, ok := w.next(off, b)
			if !ok {
				break
			}
			off, b.prev = at+RecordHeaderSize+int64(len(data)), seq
			if seq < start || s.cur.acks.contains(seq) {
				continue
			}
			// Append to an arena: earlier records keep pointing at the
			// old array if it grows, so every Data stays valid.
			from := len(arena)
			arena = append(arena, data...)
			out = append(out, Record{Seq: seq, Data: arena[from:len(arena):len(arena)]})
			if len(out) >= limit || len(arena) >= pendingBatchBytes {
				s.rbuf = w.buf
				return out, true, nil
			}
		}
		s.rbuf = w.buf
		if w.err != nil {
			return out, false, fmt.Errorf("%w: read %s: %w", ErrUnavailable, seg.path, w.err)
		}
	}
	return out, false, nil
}

// scanRecords calls fn for every valid record of seg, in order, until fn
// returns false (data is valid during the call only), and returns the
// read error that ended the scan, if any.
func (s *Spool) scanRecords(seg *segment, fn func(seq uint64, data []byte) bool) error {
	r, err := s.reader(seg)
	if err != nil {
		return err
	}
	w := newWindow(r, seg.end, s.rbuf)
	b := bounds{hi: seg.hi, prev: seg.first - 1}
	off := int64(segHeaderSize)
	for {
		seq, data, at, _, ok := w.next(off, b)
		if !ok {
			break
		}
		off, b.prev = at+RecordHeaderSize+int64(len(data)), seq
		if !fn(seq, data) {
			break
		}
	}
	s.rbuf = w.buf
	return w.err
}

// locate returns where to start reading for seq: the sparse index entry
// at or before it, and the seq a record there must exceed.
func (seg *segment) locate(seq uint64) (off int64, prev uint64) {
	j := sort.Search(len(seg.index), func(j int) bool { return seg.index[j].seq > seq }) - 1
	if j < 0 {
		return segHeaderSize, seg.first - 1
	}
	return seg.index[j].off, seg.index[j].seq - 1
}

// reader returns a ReaderAt for the segment's valid bytes.
func (s *Spool) reader(seg *segment) (io.ReaderAt, error) {
	if seg == s.active && s.af != nil {
		// The write handle reads too, and it still reads after the
		// file was deleted (see Salvage).
		return activeReader{f: s.af, synced: s.synced, mem: s.unsynced}, nil
	}
	if seg.rf == nil {
		f, err := s.fs.OpenFile(seg.path, os.O_RDONLY, 0)
		if err != nil {
			return nil, err
		}
		seg.rf = f
	}
	if seg == s.active {
		return activeReader{f: seg.rf, synced: s.synced, mem: s.unsynced}, nil
	}
	return seg.rf, nil
}

// activeReader serves the active segment: the synced part from the file,
// the rest from the copy kept in memory (which is authoritative after a
// failed write or fsync).
type activeReader struct {
	f      io.ReaderAt
	synced int64
	mem    []byte
}

func (a activeReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < a.synced {
		k := int(min(int64(len(p)), a.synced-off))
		m, err := a.f.ReadAt(p[:k], off)
		n += m
		if m < k {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	if n < len(p) {
		if i := off + int64(n) - a.synced; i < int64(len(a.mem)) {
			n += copy(p[n:], a.mem[i:])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Stats returns the current state and counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Incarnation = s.incHex
	st.Segments = len(s.segs)
	st.Bytes = s.total
	st.MaxBytes = s.maxBytes
	for _, seg := range s.segs {
		st.Records += seg.records
		if seg.last <= s.cur.acks.w {
			continue
		}
		for _, r := range seg.runs {
			st.Pending += int64(r.len() - s.cur.acks.countIn(r.lo, r.hi))
		}
	}
	st.OldestPending, _ = s.oldestPending()
	st.LastSeq, st.SyncedSeq = s.lastSeq, s.syncedSeq
	st.AckedThrough, st.AckRanges = s.cur.acks.w, len(s.cur.acks.r)
	st.DroppedRanges = len(s.cur.dropped)
	return st
}

// LastSeq returns the highest seq ever appended or recovered, including
// acknowledged and deleted ones (from the cursor when no segment is left).
// The next Append must use higher seqs.
func (s *Spool) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq
}

// SyncedSeq returns the highest seq known durable: records up to it
// survive a power cut.
func (s *Spool) SyncedSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncedSeq
}

// Incarnation returns the spool's random id (32 hex digits). A wiped or
// replaced spool directory gets a new one.
func (s *Spool) Incarnation() string {
	return s.incHex
}

// NextSync returns when Sync should next be called, and false when
// nothing waits for it: unsynced records are due SyncInterval after the
// previous sync, a changed cursor CursorInterval after the previous
// cursor write. A caller's goroutine sleeps until then.
func (s *Spool) NextSync() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextSync()
}

func (s *Spool) nextSync() (time.Time, bool) {
	var t time.Time
	ok := false
	if s.active != nil && (s.synced < s.active.end || s.needRepair) || s.dirDirty {
		t, ok = s.lastSync.Add(s.syncIvl), true
	}
	if s.cursorDirty {
		if c := s.lastCur.Add(s.curIvl); !ok || c.Before(t) {
			t = c
		}
		ok = true
	}
	return t, ok
}

// SyncDue reports whether NextSync has come.
func (s *Spool) SyncDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.nextSync()
	return ok && !s.now().Before(t)
}
