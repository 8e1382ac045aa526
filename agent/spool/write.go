package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// Append writes a group of records with one write to the active
// segment. When it returns nil the records are in the OS page cache: a
// crash of the process (SIGKILL) cannot lose them, a power cut can until
// the next successful Sync. It does not fsync, except in two rare cases:
// when the active segment is full (it is synced before a new one is
// started) and when the spool is full (the cursor is persisted before the
// oldest segment is deleted).
//
// Seqs must be strictly increasing across calls (ErrSeq). Storage
// failures return an error wrapping ErrUnavailable and leave the spool as
// if the call had not happened; the caller keeps the records and retries.
func (s *Spool) Append(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	size, err := s.checkGroup(recs)
	if err != nil {
		return err
	}
	if s.needRepair {
		if err := s.repair(); err != nil {
			return s.unavailable("rewriting unsynced records", s.active.path, err)
		}
	}
	if s.active != nil && s.active.end+int64(size) > s.segBytes {
		if err := s.seal(); err != nil {
			return err
		}
	}
	need := int64(size)
	if s.active == nil {
		need += segHeaderSize
	}
	if err := s.makeRoom(need); err != nil {
		return err
	}

	buf := s.wbuf[:0]
	if s.active == nil {
		buf = appendSegHeader(buf, segHeader{incarnation: s.inc, first: recs[0].Seq})
	}
	base := len(buf)
	for _, r := range recs {
		buf = AppendRecord(buf, r.Seq, r.Data)
	}
	s.wbuf = buf
	if cap(s.wbuf) > keepBufferCap {
		s.wbuf = nil
	}

	seg, err := s.write(recs[0].Seq, buf)
	if err != nil {
		return err
	}
	off := seg.end + int64(base)
	for _, r := range recs {
		addRecord(&seg.runs, &seg.index, r.Seq, off)
		off += int64(RecordHeaderSize + len(r.Data))
	}
	seg.records += int64(len(recs))
	seg.last = recs[len(recs)-1].Seq
	s.total += off - seg.end
	seg.end, seg.disk = off, off
	s.lastSeq = seg.last
	return nil
}

// checkGroup validates a group of records for Append and returns its
// encoded size.
func (s *Spool) checkGroup(recs []Record) (int, error) {
	prev, size := s.lastSeq, 0
	for _, r := range recs {
		if r.Seq <= prev || r.Seq == math.MaxUint64 {
			return 0, fmt.Errorf("%w: seq %d after %d", ErrSeq, r.Seq, prev)
		}
		if len(r.Data) > s.maxRec {
			return 0, fmt.Errorf("%w: record %d has %d bytes, the limit is %d", ErrTooLarge, r.Seq, len(r.Data), s.maxRec)
		}
		prev = r.Seq
		size += RecordHeaderSize + len(r.Data)
	}
	if int64(size) > s.segBytes-segHeaderSize {
		return 0, fmt.Errorf("%w: a group of %d bytes does not fit in a %d-byte segment; split it", ErrTooLarge, size, s.segBytes)
	}
	return size, nil
}

// write puts buf at the end of the active segment, or creates one whose
// first record is first, and returns the segment written to.
func (s *Spool) write(first uint64, buf []byte) (*segment, error) {
	seg := s.active
	if seg == nil {
		return s.create(first, buf)
	}
	if _, err := s.af.WriteAt(buf, seg.end); err != nil {
		s.st.WriteErrors++
		// Cut off whatever part of the group landed, so no half record
		// sits where the next group goes. If even that fails, the bytes
		// beyond the synced size are rebuilt from memory before the next
		// write (and a reader would reject a half record by its CRC).
		if terr := s.af.Truncate(seg.end); terr != nil {
			s.needRepair = true
		}
		return nil, s.unavailable("write", seg.path, err)
	}
	s.unsynced = append(s.unsynced, buf...)
	return seg, nil
}

// create starts a new active segment whose first write is buf (header and
// records): one write, so a crash leaves either nothing usable or a
// prefix that recovery cuts back.
func (s *Spool) create(first uint64, buf []byte) (*segment, error) {
	path := filepath.Join(s.dir, segName(first))
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		s.st.WriteErrors++
		if errors.Is(err, fs.ErrNotExist) && s.checkPresent() != nil {
			return nil, s.goneErr // the directory was deleted
		}
		return nil, s.unavailable("create", path, err)
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		s.st.WriteErrors++
		f.Close()
		// Removing it keeps the records of a failed Append from being
		// recovered later. If that fails too, what landed is cut back
		// to whole records by the next Open, so a failed Append may
		// reappear there, but never as a half record.
		_ = s.fs.Remove(path)
		return nil, s.unavailable("write", path, err)
	}
	seg := &segment{first: first, hi: math.MaxUint64, path: path, end: 0}
	s.segs = append(s.segs, seg)
	s.active, s.af, s.synced = seg, f, 0
	s.unsynced = append(s.unsynced[:0], buf...)
	s.dirDirty = true
	return seg, nil
}

func (s *Spool) usable() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.readOnly:
		return ErrReadOnly
	case s.goneErr != nil:
		return s.goneErr
	}
	return nil
}

// unavailable wraps a storage error in ErrUnavailable.
func (s *Spool) unavailable(op, path string, err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, named(op, path, err))
}

// named makes sure an error names the file: os errors already do (as
// *fs.PathError or *os.LinkError), others get "op path: " in front.
func named(op, path string, err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	if errors.As(err, &pe) || errors.As(err, &le) {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// seal syncs the active segment and stops appending to it. Sealed
// segments are always fully synced, so only the active one ever holds
// unsynced data.
func (s *Spool) seal() error {
	if err := s.syncData(); err != nil {
		return err
	}
	seg := s.active
	if seg.rf == nil {
		seg.rf, s.af = s.af, nil
	} else {
		s.af.Close()
		s.af = nil
	}
	s.active, s.synced, s.unsynced = nil, 0, s.unsynced[:0]
	return nil
}

// makeRoom deletes segments until need more bytes fit under MaxBytes:
// acknowledged ones first, then the oldest, acknowledged or not.
func (s *Spool) makeRoom(need int64) error {
	if s.total+need <= s.maxBytes {
		return nil
	}
	if err := s.collect(); err != nil {
		return err
	}
	if s.total+need > s.maxBytes && s.maxBytes < s.wantBytes {
		s.fitToDisk() // the disk may have room again
	}
	for s.total+need > s.maxBytes && len(s.segs) > 0 && s.segs[0] != s.active {
		if err := s.drop(s.segs[0]); err != nil {
			return err
		}
	}
	return nil
}

// drop deletes a segment that still holds unacknowledged records and
// reports them. The report and the acknowledgement of the segment's seqs
// are persisted before the file is deleted, so a crash in between can
// neither lose the report nor bring the records back unreported.
func (s *Spool) drop(seg *segment) error {
	next := s.cur.clone()
	taken := s.taken
	lost := s.lostIn(seg, &next.acks)
	var n uint64
	for _, d := range lost {
		taken = next.addDropped(d, taken)
		n += d.Count
	}
	next.acks.add(seg.first, seg.last)
	if err := s.writeCursor(&next); err != nil {
		return fmt.Errorf("%w; not deleting %s", err, seg.path)
	}
	s.cur, s.taken, s.cursorDirty = next, taken, false
	if n > 0 {
		s.st.DroppedRecords += int64(n)
		s.log.Error("spool: full: deleted the oldest segment with unacknowledged records",
			"file", seg.path, "seq_first", lost[0].First, "seq_last", lost[len(lost)-1].Last, "records", n)
	}
	if err := s.deleteSegment(seg); err != nil {
		// Its seqs are acknowledged now: collect retries the delete.
		return s.unavailable("delete", seg.path, err)
	}
	s.normalize()
	// Make the delete durable now: a segment that came back after a
	// power cut would be sent again if the cursor were lost too.
	return s.syncDir()
}

// lostIn returns the unacknowledged records of seg as DropFull ranges:
// one range per run of records of the same incarnation (Options.Tag), so
// a report names whose readings were lost.
func (s *Spool) lostIn(seg *segment, acks *rangeSet) []DroppedRange {
	var out []DroppedRange
	add := func(seq uint64, inc string) {
		if n := len(out); n > 0 && out[n-1].Incarnation == inc {
			out[n-1].Last = seq
			out[n-1].Count++
			return
		}
		out = append(out, DroppedRange{First: seq, Last: seq, Count: 1, Reason: DropFull, Incarnation: inc})
	}
	if s.tagOf != nil {
		if s.scanRecords(seg, func(seq uint64, data []byte) bool {
			if !acks.contains(seq) {
				add(seq, s.tagOf(data))
			}
			return true
		}) == nil {
			return out
		}
		out = out[:0] // unreadable: by seq only
	}
	for _, r := range seg.runs {
		for x := acks.nextUncovered(r.lo); x <= r.hi; x = acks.nextUncovered(x + 1) {
			add(x, "")
		}
	}
	return out
}

func (s *Spool) deleteSegment(seg *segment) error {
	if seg.rf != nil {
		seg.rf.Close()
		seg.rf = nil
	}
	if err := s.fs.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.dirDirty = true
	s.total -= seg.disk
	s.segs = slices.DeleteFunc(s.segs, func(x *segment) bool { return x == seg })
	return nil
}

// collect deletes sealed segments whose records are all acknowledged,
// after persisting the cursor that says so.
func (s *Spool) collect() error {
	var victims []*segment
	for _, seg := range s.segs {
		if seg != s.active && coveredBy(&s.cur.acks, seg) {
			victims = append(victims, seg)
		}
	}
	if len(victims) == 0 {
		return nil
	}
	for _, seg := range victims {
		if !coveredBy(&s.persisted.acks, seg) {
			// The cursor on disk must say these records are
			// acknowledged before they disappear.
			if err := s.persistCursor(); err != nil {
				return err
			}
			break
		}
	}
	for _, seg := range victims {
		if err := s.deleteSegment(seg); err != nil {
			return s.unavailable("delete", seg.path, err)
		}
	}
	if err := s.syncDir(); err != nil {
		return err
	}
	s.ensureReserve() // space was freed: take back what a full disk used
	return nil
}

func (s *Spool) syncDir() error {
	if !s.dirDirty {
		return nil
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return s.unavailable("sync directory", s.dir, err)
	}
	s.dirDirty = false
	return nil
}

func coveredBy(acks *rangeSet, seg *segment) bool {
	if seg.last <= acks.w {
		return true
	}
	for _, r := range seg.runs {
		if !acks.covers(r.lo, r.hi) {
			return false
		}
	}
	return true
}

// Sync makes every appended record durable with one fdatasync of the
// active segment (plus a directory fsync after a segment was created or
// deleted), deletes fully acknowledged segments, and persists the cursor
// if it changed and CursorInterval has passed. On success SyncedSeq
// equals LastSeq.
//
// An fsync error is never retried on the same file descriptor: after a
// failed fsync Linux may drop the dirty pages and report success for the
// next fsync. The unsynced records are kept in memory; the file is
// reopened, cut back to the last synced size, rewritten and synced. If
// that fails too, Sync returns an error (wrapping ErrUnavailable) saying
// which records may be lost, and tries again next time.
func (s *Spool) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.readOnly {
		return nil
	}
	if err := s.checkPresent(); err != nil {
		return err
	}
	return s.sync(false)
}

func (s *Spool) sync(force bool) error {
	err := s.syncData()
	cerr := s.collect()
	if cerr == nil && s.cursorDirty && (force || !s.now().Before(s.lastCur.Add(s.curIvl))) {
		cerr = s.persistCursor()
	}
	if force && cerr == nil && (s.persisted.lastSeq != s.lastSeq || s.persisted.syncedSeq != s.durable) {
		cerr = s.persistCursor()
	}
	return errors.Join(err, cerr)
}

func (s *Spool) syncData() error {
	if s.active == nil || s.synced == s.active.end && !s.needRepair {
		if err := s.syncDir(); err != nil {
			return err
		}
		s.syncedSeq = s.lastSeq
		if s.active != nil {
			s.durable = max(s.durable, s.active.last)
		}
		return nil
	}
	seg := s.active
	upto, seq, last := seg.end, s.lastSeq, seg.last
	s.lastSync = s.now()
	var err error
	if s.needRepair {
		err = errors.New("earlier write or sync failed")
	} else if err = s.af.Sync(); err != nil {
		s.st.SyncErrors++
	}
	if err != nil {
		// See Sync: rebuild the unsynced part on a fresh descriptor.
		rerr := s.repair()
		if rerr == nil {
			if rerr = s.af.Sync(); rerr != nil {
				s.st.SyncErrors++
				s.needRepair = true
			}
		}
		if rerr != nil {
			return fmt.Errorf("%w: %w; rewriting its %d unsynced bytes and syncing again failed too (%w): records %d..%d may be lost if the power fails; they are kept in memory and rewritten on the next Sync",
				ErrUnavailable, named("sync", seg.path, err), len(s.unsynced), rerr, s.syncedSeq+1, seq)
		}
		s.log.Warn("spool: fsync failed; rewrote the unsynced records and synced them", "file", seg.path, "err", err, "bytes", len(s.unsynced))
	}
	s.synced = upto
	s.unsynced = s.unsynced[:0]
	if cap(s.unsynced) > keepBufferCap {
		s.unsynced = nil
	}
	if err := s.syncDir(); err != nil {
		return err
	}
	s.syncedSeq, s.durable = seq, last
	return nil
}

// repair replaces the active segment's descriptor with a fresh one and
// rebuilds the file beyond the synced size from memory.
func (s *Spool) repair() error {
	s.needRepair = true
	if s.af != nil {
		s.af.Close()
		s.af = nil
	}
	f, err := s.fs.OpenFile(s.active.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(s.synced); err != nil {
		f.Close()
		return err
	}
	if len(s.unsynced) > 0 {
		if _, err := f.WriteAt(s.unsynced, s.synced); err != nil {
			f.Close()
			return err
		}
	}
	s.af, s.needRepair = f, false
	return nil
}

// Close syncs, persists the cursor and closes the files. The spool
// cannot be used afterwards; a second Close returns nil.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var err error
	if !s.readOnly && s.goneErr == nil {
		err = s.sync(true)
	}
	s.closeFiles()
	s.closed = true
	return err
}
