package spool

// Open's recovery: the meta file, the cursor and the segments are read
// back and every kind of damage is counted, logged and reported (see
// doc.go for what happens to each).

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type segFile struct {
	name  string
	first uint64
}

// recover loads meta, cursor and segments. See the package documentation
// for what it does with each kind of damage.
func (s *Spool) recover() error {
	entries, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var segFiles []segFile
	var corrupt []string
	for _, e := range entries {
		name := e.Name()
		if first, ok := parseSegName(name); ok && e.Type().IsRegular() {
			segFiles = append(segFiles, segFile{name, first})
			continue
		}
		switch {
		case name == cursorName+".tmp" || name == metaName+".tmp" || name == reserveName+".tmp":
			// An interrupted atomic write; the real file is intact.
			if !s.readOnly {
				s.remove(name)
			}
		case strings.HasSuffix(name, corruptSuffix):
			corrupt = append(corrupt, name)
		}
		// Anything else is not ours and is left alone.
	}
	sort.Slice(segFiles, func(i, j int) bool { return segFiles[i].first < segFiles[j].first })

	if err := s.loadMeta(segFiles); err != nil {
		return err
	}
	s.loadCursor()
	s.loadSegments(segFiles)

	if !s.readOnly {
		for len(corrupt) > maxCorruptFiles {
			s.remove(corrupt[0])
			corrupt = corrupt[1:]
		}
	}
	s.normalize()
	if s.readOnly {
		return nil
	}
	// Make the directory entries of everything found durable: after a
	// SIGKILL the last segment's entry may exist only in memory.
	if err := s.fs.SyncDir(s.dir); err != nil {
		s.log.Warn("spool: cannot sync the directory", "dir", s.dir, "err", err)
		s.dirDirty = true
	}
	if s.cursorDirty {
		// New drop reports or a replaced cursor: persist now so the
		// reports survive another crash.
		if err := s.persistCursor(); err != nil {
			s.log.Warn("spool: cannot write the cursor; will retry", "err", err)
		}
	}
	if err := s.collect(); err != nil {
		s.log.Warn("spool: cannot delete acknowledged segments; will retry", "err", err)
	}
	return nil
}

func (s *Spool) loadMeta(segFiles []segFile) error {
	path := filepath.Join(s.dir, metaName)
	b, err := readSmallFile(s.fs, path, 4096)
	if err == nil {
		if s.inc, err = decodeMeta(b); err == nil {
			s.incHex = hex.EncodeToString(s.inc[:])
			s.metaOK = true
			return nil
		}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		s.st.MetaErrors++
		s.log.Warn("spool: meta file unreadable; rebuilding it", "file", path, "err", err)
	}
	// A lost meta file must not orphan the segments: adopt the
	// incarnation of the newest segment with a valid header.
	adopted := false
	for i := len(segFiles) - 1; i >= 0 && !adopted; i-- {
		b, err := readSmallPrefix(s.fs, filepath.Join(s.dir, segFiles[i].name), segHeaderSize)
		if err != nil {
			continue
		}
		if h, err := decodeSegHeader(b); err == nil && h.first == segFiles[i].first {
			s.inc, adopted = h.incarnation, true
		}
	}
	if s.readOnly {
		if adopted {
			s.incHex = hex.EncodeToString(s.inc[:])
		}
		return nil
	}
	if !adopted {
		if _, err := rand.Read(s.inc[:]); err != nil {
			return fmt.Errorf("spool: incarnation: %w", err)
		}
	}
	s.incHex = hex.EncodeToString(s.inc[:])
	if err := s.writeSmall(metaName, encodeMeta(s.inc)); err != nil {
		if !adopted {
			return fmt.Errorf("spool: %w: creating %s: %w", ErrUnavailable, path, err)
		}
		// The segments say who we are; do not refuse to start.
		s.log.Warn("spool: cannot rewrite the meta file; will try at the next Open", "file", path, "err", err)
		return nil
	}
	s.metaOK = true
	return nil
}

func readSmallPrefix(fsys FS, name string, n int) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := f.ReadAt(b, 0)
	if k == n {
		err = nil
	}
	return b[:k], err
}

func (s *Spool) loadCursor() {
	path := filepath.Join(s.dir, cursorName)
	b, err := readSmallFile(s.fs, path, maxCursorFile)
	var c cursorState
	if err == nil {
		c, err = decodeCursor(b, s.inc)
	}
	synced := err == nil
	if synced {
		s.cur, s.persisted = c, c.clone()
	}
	// The live cursor has the acknowledgements since the last fsynced
	// one, unless a power cut tore or lost it (then its CRC fails, or
	// its generation is older).
	live := false
	if lb, lerr := readSmallFile(s.fs, filepath.Join(s.dir, liveCursorName), maxCursorFile+4); lerr == nil {
		if lc, lerr := decodeLive(lb, s.inc); lerr == nil && (!synced || lc.gen > c.gen) {
			s.cur, live = lc, true
			s.cursorDirty = true
		}
	}
	s.gen = max(s.cur.gen, c.gen)
	if synced || errors.Is(err, fs.ErrNotExist) {
		return
	}
	s.st.CursorErrors++
	s.cursorDirty = true
	if live {
		s.log.Warn("spool: cursor unreadable; using the acknowledgements of cursor.live", "file", path, "err", err)
		return
	}
	// Acknowledgements are lost: every record still in a segment will
	// be sent again. Duplicates, never loss.
	s.log.Warn("spool: cursor unreadable; records still on disk will be sent again", "file", path, "err", err)
}

// segLoad is what loadSegments gathers across segments.
type segLoad struct {
	gaps       []seqRange // seqs that corrupt regions may have held
	maxRec     uint64     // highest record seq found
	prevLast   uint64     // last record of the previous kept segment
	unreadable bool       // some records could not be read, so may still be there
}

// loadSegments scans the segments in order and rebuilds the index.
func (s *Spool) loadSegments(segFiles []segFile) {
	var ld segLoad
	bound := s.segmentBounds(segFiles)
	for i, sf := range segFiles {
		nextName := uint64(math.MaxUint64) // records here are below the next file's name
		if i+1 < len(segFiles) {
			nextName = segFiles[i+1].first
		}
		isLast := i == len(segFiles)-1
		if !isLast && bound[i]-1 <= s.persisted.acks.w {
			// Every seq it can hold is acknowledged, and the fsynced
			// cursor says so: no need to read it.
			if !s.readOnly {
				s.remove(sf.name)
			}
			continue
		}
		s.loadSegment(&ld, sf, bound[i], nextName, isLast)
	}
	s.lastSeq = max(s.cur.lastSeq, s.cur.acks.max(), ld.maxRec)
	for _, d := range s.cur.dropped {
		s.lastSeq = max(s.lastSeq, d.Last)
	}
	for _, g := range ld.gaps {
		s.reportGap(g.lo, g.hi, DropCorrupt)
	}
	// Records the last cursor says were durable but are not here: the
	// storage lost them (a card that acknowledged a flush it did not do).
	if s.cur.syncedSeq > ld.maxRec && !ld.unreadable {
		s.reportGap(ld.maxRec+1, s.cur.syncedSeq, DropLost)
	}
	s.syncedSeq, s.durable = s.lastSeq, ld.maxRec
	if s.readOnly || len(s.segs) == 0 {
		return
	}
	s.resumeLast(ld.maxRec)
}

// segmentBounds returns, for each segment, the seq its records stay
// below: the next segment's first seq. Only segments with a sound header
// count as "next", so a damaged or foreign file cannot invalidate the
// records before it.
func (s *Spool) segmentBounds(segFiles []segFile) []uint64 {
	bound := make([]uint64, len(segFiles))
	hi := uint64(math.MaxUint64)
	for i := len(segFiles) - 1; i >= 0; i-- {
		bound[i] = hi
		b, err := readSmallPrefix(s.fs, filepath.Join(s.dir, segFiles[i].name), segHeaderSize)
		if err != nil {
			continue
		}
		if h, err := decodeSegHeader(b); err == nil && h.first == segFiles[i].first && h.incarnation == s.inc {
			hi = segFiles[i].first
		}
	}
	return bound
}

// loadSegment scans one segment and keeps it in the index if it holds
// records; damage is counted, logged and noted in ld.
func (s *Spool) loadSegment(ld *segLoad, sf segFile, hi, nextName uint64, isLast bool) {
	path := filepath.Join(s.dir, sf.name)
	f, err := s.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		s.log.Error("spool: cannot open segment; skipping it until the next Open", "file", path, "err", err)
		ld.unreadable = true
		s.unreadable = append(s.unreadable, seqRange{sf.first, nextName - 1})
		return
	}
	size := int64(0)
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	res := scanSegment(f, size, sf.first, ld.prevLast, hi, s.rbuf)
	seg := &segment{first: sf.first, hi: hi, path: path, end: res.end, disk: size, records: res.records,
		last: res.last, runs: res.runs, index: res.index, rf: f}
	if res.readErr != nil {
		// Keep what was read; never append after an unreadable part.
		s.log.Error("spool: read error in segment; using the records before it", "file", path, "err", res.readErr)
		seg.badHeader = true
		ld.unreadable = true
		s.unreadable = append(s.unreadable, seqRange{max(sf.first, res.last+1), nextName - 1})
		res.tail = 0
	}
	if res.hdrErr == nil && res.hdr.incarnation != s.inc {
		res.hdrErr = errors.New("segment header: written by another incarnation of the spool")
		res.records = 0 // its records are not ours
	}
	if res.hdrErr != nil && res.records == 0 {
		torn := isLast && (size < segHeaderSize || allZero(f, size)) // torn while being created
		f.Close()
		s.dropHeaderless(sf.name, path, size, res.hdrErr, torn)
		return
	}
	if res.hdrErr != nil {
		// The records carry their own checksums: a damaged header
		// must not cost the data behind it.
		s.st.BadHeaders++
		seg.badHeader = true
		s.log.Error("spool: segment header damaged; salvaged its records", "file", path, "err", res.hdrErr, "records", res.records)
	}
	s.noteDamage(ld, seg, &res, sf.first, nextName, isLast)
	if res.records == 0 {
		f.Close()
		if isLast && res.tail == 0 {
			// A segment is created by a write with records: a sound
			// header alone is a write torn right after it.
			s.st.TornTails++
			s.log.Warn("spool: removed a torn new segment", "file", path, "bytes", size)
		}
		if !s.readOnly {
			if res.corrupt != nil || res.tail > 0 && !isLast {
				s.setAside(sf.name)
			} else {
				s.remove(sf.name)
			}
		}
		return
	}
	ld.maxRec, ld.prevLast = max(ld.maxRec, res.last), res.last
	s.segs = append(s.segs, seg)
	s.total += seg.disk
}

// dropHeaderless removes a segment torn while being created, or sets
// aside one with neither a valid header nor records.
func (s *Spool) dropHeaderless(name, path string, size int64, hdrErr error, torn bool) {
	if torn {
		s.st.TornTails++
		s.st.TornBytes += size
		s.log.Warn("spool: removed a torn new segment", "file", path, "bytes", size)
		if !s.readOnly {
			s.remove(name)
		}
		return
	}
	s.st.BadSegments++
	s.log.Error("spool: segment has no valid header or records; set aside", "file", path, "err", hdrErr)
	if !s.readOnly {
		s.setAside(name)
	}
}

// noteDamage counts and logs a segment's corrupt regions and torn tail:
// corrupt seqs become gaps to report; the last segment's torn tail is cut.
func (s *Spool) noteDamage(ld *segLoad, seg *segment, res *scanResult, first, nextName uint64, isLast bool) {
	for _, c := range res.corrupt {
		s.st.CorruptRegions++
		s.st.CorruptBytes += c.n
		s.log.Error("spool: skipped a corrupt region", "file", seg.path, "offset", c.off, "bytes", c.n)
		ld.gaps = append(ld.gaps, seqRange{gapFrom(first, c.after), c.before - 1})
	}
	if res.tail == 0 {
		return
	}
	if !isLast {
		s.st.CorruptRegions++
		s.st.CorruptBytes += res.tail
		s.log.Error("spool: skipped a corrupt region at the end of a segment", "file", seg.path, "offset", res.end, "bytes", res.tail)
		ld.gaps = append(ld.gaps, seqRange{gapFrom(first, res.last), nextName - 1})
		return
	}
	s.st.TornTails++
	s.st.TornBytes += res.tail
	s.log.Warn("spool: cut a torn write off the end of the last segment", "file", seg.path, "offset", res.end, "bytes", res.tail)
	if s.readOnly {
		return
	}
	if err := s.truncateSegment(seg.path, res.end); err != nil {
		s.log.Error("spool: cannot truncate the torn tail; sealing the segment", "file", seg.path, "err", err)
		seg.badHeader = true // never append after garbage
	} else {
		seg.disk = res.end
	}
}

// gapFrom is the first seq a corrupt region may have held: the one after
// the last good record before it (0: none), else the segment's first.
func gapFrom(first, lastGood uint64) uint64 {
	if lastGood > 0 {
		return lastGood + 1
	}
	return first
}

// resumeLast makes the last segment the active one if it can take more.
// After a SIGKILL its tail may be only in the page cache: it is synced
// before it counts as durable. (Sealed segments were synced when sealed.)
func (s *Spool) resumeLast(maxRec uint64) {
	last := s.segs[len(s.segs)-1]
	f, err := s.fs.OpenFile(last.path, os.O_RDWR, 0)
	if err == nil {
		if err = f.Sync(); err != nil {
			f.Close()
		}
	}
	if err != nil {
		s.log.Error("spool: cannot sync the last segment; new records go to a new one", "file", last.path, "err", err)
		s.syncedSeq = min(s.cur.syncedSeq, maxRec)
		s.durable = s.syncedSeq
		return
	}
	if last.badHeader || last.end >= s.segBytes || coveredBy(&s.cur.acks, last) {
		// Not appended to. A fully acknowledged last segment is deleted
		// by collect like any other; the next Append starts a new one.
		f.Close()
		return
	}
	s.active, s.af, s.synced = last, f, last.end
	last.hi = math.MaxUint64 // new records go here, whatever files came after
}

// reportGap records that the unacknowledged seqs in [lo, hi] are gone.
// The range is then treated as acknowledged, so it is reported once.
func (s *Spool) reportGap(lo, hi uint64, reason DropReason) {
	hi = min(hi, s.lastSeq)
	if hi < lo {
		return
	}
	first := s.cur.acks.nextUncovered(lo)
	if first > hi {
		return
	}
	count := hi - first + 1 - s.cur.acks.countIn(first, hi)
	s.cur.acks.add(lo, hi)
	s.taken = s.cur.addDropped(DroppedRange{First: first, Last: hi, Count: count, Reason: reason}, s.taken)
	s.st.DroppedRecords += int64(count)
	s.cursorDirty = true
	s.log.Error("spool: records lost", "seq_first", first, "seq_last", hi, "at_most", count, "reason", reason.String())
}

// allZero reports whether the file holds only zero bytes: what a torn
// write leaves when its later pages reached the card but not the first.
func allZero(f File, size int64) bool {
	buf := make([]byte, min(size, readChunk))
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := f.ReadAt(buf, off)
		for _, b := range buf[:n] {
			if b != 0 {
				return false
			}
		}
		if err != nil {
			return n == 0 && off+int64(n) >= size
		}
	}
	return true
}

func (s *Spool) truncateSegment(path string, size int64) error {
	f, err := s.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// setAside renames a damaged segment to *.corrupt for inspection.
func (s *Spool) setAside(name string) {
	path := filepath.Join(s.dir, name)
	if err := s.fs.Rename(path, path+corruptSuffix); err != nil {
		s.log.Warn("spool: cannot set aside damaged segment", "err", err)
		return
	}
	s.dirDirty = true
}
