package spool

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// DropReason says why records were lost.
type DropReason uint8

const (
	// DropFull: the spool reached MaxBytes and its oldest segment was
	// deleted with unacknowledged records in it. Count is exact.
	DropFull DropReason = 1 + iota
	// DropCorrupt: a corrupt region was skipped between two valid
	// records. The range is the seqs between them; Count is an upper
	// bound (seqs that were never appended are included).
	DropCorrupt
	// DropLost: records the cursor says were synced are missing after a
	// restart: the storage lost data it had acknowledged. The range and
	// Count are upper bounds as for DropCorrupt.
	DropLost
	// DropMemory: not used by the spool itself; the agent reports with it
	// readings it had to keep in memory (spool not writable) and lost
	// when that buffer filled.
	DropMemory
	// DropDeleted: the spool's directory or files were deleted while the
	// agent ran, and these records could not be read back from the files
	// it still had open.
	DropDeleted
)

func (r DropReason) String() string {
	switch r {
	case DropFull:
		return "spool full"
	case DropCorrupt:
		return "corrupt"
	case DropLost:
		return "lost by storage"
	case DropMemory:
		return "memory full"
	case DropDeleted:
		return "spool deleted"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// DroppedRange is a range of sequence numbers whose unacknowledged
// records are gone. It is kept in the cursor until AckDropped, so a
// report survives restarts until it has been published.
type DroppedRange struct {
	First, Last uint64
	Count       uint64
	Reason      DropReason
	// Incarnation names whose seqs these are (32 hex digits) when they
	// are not this spool's: records carried over from a spool that was
	// deleted, or kept in memory under a volatile incarnation. "" means
	// the spool's own.
	Incarnation string
}

const (
	// maxCursorRanges bounds the acknowledged ranges above the watermark
	// that the cursor stores. Beyond it the lowest are kept: forgetting a
	// higher range only means its records are sent again. Live-first
	// sending acknowledges per-topic batches that interleave with the
	// backlog, so the set can be long after an outage; 8192 ranges are
	// 128 KiB at most, and normally the set is a handful.
	maxCursorRanges = 8192
	// maxDropped bounds the pending drop reports; beyond it the two
	// oldest are merged into one.
	maxDropped = 64
	// maxCursorFile bounds what a cursor file may hold.
	maxCursorFile = cursorFixedSize + 16*maxCursorRanges + dropEntrySize*maxDropped + 4
)

// cursorState is what the cursor file holds.
type cursorState struct {
	gen       uint64 // incremented at every write: the newer of two files wins
	acks      rangeSet
	lastSeq   uint64 // highest seq appended when written
	syncedSeq uint64 // highest seq durable when written
	dropped   []DroppedRange
}

func (c *cursorState) clone() cursorState {
	return cursorState{gen: c.gen, acks: c.acks.clone(), lastSeq: c.lastSeq, syncedSeq: c.syncedSeq,
		dropped: append([]DroppedRange(nil), c.dropped...)}
}

// addDropped appends a report, merging the two oldest when over the
// bound. It returns how many of the leading reports remain "taken" when
// taken of them were before (a merge with an untaken one is re-reported).
func (c *cursorState) addDropped(d DroppedRange, taken int) int {
	c.dropped = append(c.dropped, d)
	for len(c.dropped) > maxDropped {
		taken = mergeOldest(&c.dropped, taken)
	}
	return taken
}

// mergeOldest merges the two oldest reports of *list into one and returns
// the new count of handed-out leading reports.
func mergeOldest(list *[]DroppedRange, taken int) int {
	l := *list
	// The oldest pair that shares incarnation and reason, so a merged
	// report still names whose readings were lost and why.
	i := 0
	for j := 0; j+1 < len(l); j++ {
		if l[j].Incarnation == l[j+1].Incarnation && l[j].Reason == l[j+1].Reason {
			i = j
			break
		}
	}
	a, b := l[i], l[i+1]
	l[i+1] = DroppedRange{First: min(a.First, b.First), Last: max(a.Last, b.Last), Count: a.Count + b.Count,
		Reason: a.Reason, Incarnation: a.Incarnation}
	*list = append(l[:i], l[i+1:]...)
	switch {
	case taken > i+1: // both were handed out
		return taken - 1
	case taken == i+1: // a was, b was not: report the merge again
		return i
	}
	return taken
}

// Cursor file, version 2 (little-endian):
//
//	off  size  field
//	  0     4  magic "SPCU"
//	  4     2  version (2)
//	  6     2  zero
//	  8    16  incarnation
//	 24     8  generation: the higher of two valid files is the newer
//	 32     8  watermark: every seq <= it is acknowledged
//	 40     8  last appended seq when written
//	 48     8  last synced seq when written
//	 56     4  number of ranges R (<= 8192)
//	 60     4  number of drop reports D (<= 64)
//	 64  16*R  ranges: first, last (inclusive), acknowledged, above the watermark
//	  .  48*D  drop reports: first, last, count, reason (1 byte), 7 zero
//	           bytes, incarnation (16 bytes, zero = this spool's)
//	  .     4  CRC32C of everything before
//
// Version 1 (written before the generation and the per-report
// incarnation existed) lacks the generation field (generation 0) and its
// drop reports are 32 bytes, without the incarnation. It is still read.
//
// The same encoding is kept in two files: "cursor", replaced atomically
// and fsynced (what survives a power cut, and what segment deletion
// relies on), and "cursor.live", overwritten in place after every
// acknowledgement without fsync, framed by a 4-byte length: a process
// crash loses no acknowledgement, so a SIGKILL causes few duplicates,
// while the SD card sees at most one page per kernel writeback. Open
// takes the valid file with the higher generation.
const (
	cursorName      = "cursor"
	liveCursorName  = "cursor.live"
	cursorVersion   = 2
	cursorFixedSize = 64
	dropEntrySize   = 48

	cursorV1FixedSize = 56
	dropEntryV1Size   = 32
)

var cursorMagic = [4]byte{'S', 'P', 'C', 'U'}

func encodeCursor(dst []byte, inc [16]byte, c *cursorState) []byte {
	ranges := c.acks.r
	if len(ranges) > maxCursorRanges {
		ranges = ranges[:maxCursorRanges]
	}
	b := dst
	b = append(b, cursorMagic[:]...)
	b = binary.LittleEndian.AppendUint16(b, cursorVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = append(b, inc[:]...)
	b = binary.LittleEndian.AppendUint64(b, c.gen)
	b = binary.LittleEndian.AppendUint64(b, c.acks.w)
	b = binary.LittleEndian.AppendUint64(b, c.lastSeq)
	b = binary.LittleEndian.AppendUint64(b, c.syncedSeq)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ranges)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(c.dropped)))
	for _, r := range ranges {
		b = binary.LittleEndian.AppendUint64(b, r.lo)
		b = binary.LittleEndian.AppendUint64(b, r.hi)
	}
	for _, d := range c.dropped {
		b = binary.LittleEndian.AppendUint64(b, d.First)
		b = binary.LittleEndian.AppendUint64(b, d.Last)
		b = binary.LittleEndian.AppendUint64(b, d.Count)
		b = append(b, byte(d.Reason), 0, 0, 0, 0, 0, 0, 0)
		var di [16]byte
		if d.Incarnation != "" {
			hex.Decode(di[:], []byte(d.Incarnation)) // set by the spool: 32 hex digits
		}
		b = append(b, di[:]...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[len(dst):], castagnoli))
}

var errCursorIncarnation = errors.New("belongs to another incarnation of the spool")

func decodeCursor(b []byte, inc [16]byte) (cursorState, error) {
	var c cursorState
	if len(b) < cursorV1FixedSize+4 {
		return c, errors.New("too short")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return c, errors.New("checksum mismatch")
	}
	fixed, dsize := cursorFixedSize, dropEntrySize
	switch v := binary.LittleEndian.Uint16(b[4:]); {
	case string(b[:4]) != string(cursorMagic[:]):
		return c, errors.New("bad magic")
	case v == 1:
		fixed, dsize = cursorV1FixedSize, dropEntryV1Size
	case v != cursorVersion:
		return c, fmt.Errorf("version %d is not known to this version of the agent", v)
	case len(b) < cursorFixedSize+4:
		return c, errors.New("too short")
	}
	if string(b[8:24]) != string(inc[:]) {
		return c, errCursorIncarnation
	}
	p := body[24:]
	if fixed == cursorFixedSize {
		c.gen, p = binary.LittleEndian.Uint64(p), p[8:]
	}
	c.acks.w = binary.LittleEndian.Uint64(p)
	c.lastSeq = binary.LittleEndian.Uint64(p[8:])
	c.syncedSeq = binary.LittleEndian.Uint64(p[16:])
	nr, nd := binary.LittleEndian.Uint32(p[24:]), binary.LittleEndian.Uint32(p[28:])
	if nr > maxCursorRanges || nd > maxDropped || len(body) != fixed+16*int(nr)+dsize*int(nd) {
		return c, errors.New("bad counts")
	}
	p = body[fixed:]
	for range nr {
		lo, hi := binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:])
		p = p[16:]
		// add re-normalises, so a cursor written by a buggy or older
		// version cannot break the set's invariants.
		c.acks.add(lo, hi)
	}
	for range nd {
		d := DroppedRange{First: binary.LittleEndian.Uint64(p), Last: binary.LittleEndian.Uint64(p[8:]),
			Count: binary.LittleEndian.Uint64(p[16:]), Reason: DropReason(p[24])}
		if dsize == dropEntrySize {
			if di := p[32:48]; !allZeroBytes(di) {
				d.Incarnation = hex.EncodeToString(di)
			}
		}
		p = p[dsize:]
		c.dropped = append(c.dropped, d)
	}
	return c, nil
}

// encodeLive frames a cursor for the in-place live file: its length
// first, so a shorter cursor written over a longer one is read back
// without the stale tail.
func encodeLive(dst []byte, inc [16]byte, c *cursorState) []byte {
	dst = append(dst[:0], 0, 0, 0, 0)
	dst = encodeCursor(dst, inc, c)
	binary.LittleEndian.PutUint32(dst, uint32(len(dst)-4))
	return dst
}

func decodeLive(b []byte, inc [16]byte) (cursorState, error) {
	if len(b) < 4 {
		return cursorState{}, errors.New("too short")
	}
	n := binary.LittleEndian.Uint32(b)
	if int64(n) > int64(len(b)-4) {
		return cursorState{}, errors.New("truncated")
	}
	return decodeCursor(b[4:4+n], inc)
}

func allZeroBytes(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// readSmallFile reads a whole file of at most limit bytes.
func readSmallFile(fsys FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d expected", name, st.Size(), limit)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// WriteFileAtomic replaces dir/name with data so that a crash at any
// point leaves either the old or the new content: write a temporary
// file, fsync it, rename it over the old one, fsync the directory.
func WriteFileAtomic(fsys FS, dir, name string, data []byte) error {
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}

func (s *Spool) persistCursor() error {
	if err := s.writeCursor(&s.cur); err != nil {
		return err
	}
	s.cursorDirty = false
	return nil
}

// writeCursor persists c (which may be a candidate state not yet
// adopted) and remembers it as what the file holds.
func (s *Spool) writeCursor(c *cursorState) error {
	c.lastSeq, c.syncedSeq = s.lastSeq, s.durable
	s.gen++
	c.gen = s.gen
	// Counted from the attempt, so a failing disk is retried at the
	// cursor interval instead of on every call.
	s.lastCur = s.now()
	if err := s.writeSmall(cursorName, encodeCursor(nil, s.inc, c)); err != nil {
		return fmt.Errorf("%w: cursor: %w", ErrUnavailable, err)
	}
	s.persisted = c.clone()
	if len(s.persisted.acks.r) > maxCursorRanges {
		s.persisted.acks.r = s.persisted.acks.r[:maxCursorRanges]
	}
	s.st.CursorWrites++
	return nil
}
