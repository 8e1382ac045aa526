package spool

import (
	"encoding/binary"
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
}

const (
	// maxCursorRanges bounds the acknowledged ranges above the watermark
	// that the cursor stores. The lowest are kept: forgetting a higher
	// range only means its records are sent again.
	maxCursorRanges = 64
	// maxDropped bounds the pending drop reports; beyond it the two
	// oldest are merged into one.
	maxDropped = 64
)

// cursorState is what the cursor file holds.
type cursorState struct {
	acks      rangeSet
	lastSeq   uint64 // highest seq appended when written
	syncedSeq uint64 // highest seq durable when written
	dropped   []DroppedRange
}

func (c *cursorState) clone() cursorState {
	return cursorState{acks: c.acks.clone(), lastSeq: c.lastSeq, syncedSeq: c.syncedSeq,
		dropped: append([]DroppedRange(nil), c.dropped...)}
}

// addDropped appends a report, merging the two oldest when over the
// bound. It returns how many of the leading reports remain "taken" when
// taken of them were before (a merge with an untaken one is re-reported).
func (c *cursorState) addDropped(d DroppedRange, taken int) int {
	c.dropped = append(c.dropped, d)
	for len(c.dropped) > maxDropped {
		a, b := c.dropped[0], c.dropped[1]
		c.dropped[1] = DroppedRange{First: min(a.First, b.First), Last: max(a.Last, b.Last), Count: a.Count + b.Count, Reason: a.Reason}
		c.dropped = append(c.dropped[:0], c.dropped[1:]...)
		switch {
		case taken == 1:
			taken = 0
		case taken >= 2:
			taken--
		}
	}
	return taken
}

// Cursor file (little-endian):
//
//	off  size  field
//	  0     4  magic "SPCU"
//	  4     2  version (1)
//	  6     2  zero
//	  8    16  incarnation
//	 24     8  watermark: every seq <= it is acknowledged
//	 32     8  last appended seq when written
//	 40     8  last synced seq when written
//	 48     4  number of ranges R (<= 64)
//	 52     4  number of drop reports D (<= 64)
//	 56  16*R  ranges: first, last (inclusive), acknowledged, above the watermark
//	  .  32*D  drop reports: first, last, count, reason (1 byte), 7 zero bytes
//	  .     4  CRC32C of everything before
const (
	cursorName      = "cursor"
	cursorVersion   = 1
	cursorFixedSize = 56
)

var cursorMagic = [4]byte{'S', 'P', 'C', 'U'}

func encodeCursor(inc [16]byte, c *cursorState) []byte {
	ranges := c.acks.r
	if len(ranges) > maxCursorRanges {
		ranges = ranges[:maxCursorRanges]
	}
	b := make([]byte, 0, cursorFixedSize+16*len(ranges)+32*len(c.dropped)+4)
	b = append(b, cursorMagic[:]...)
	b = binary.LittleEndian.AppendUint16(b, cursorVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = append(b, inc[:]...)
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
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errCursorIncarnation = errors.New("belongs to another incarnation of the spool")

func decodeCursor(b []byte, inc [16]byte) (cursorState, error) {
	var c cursorState
	if len(b) < cursorFixedSize+4 {
		return c, errors.New("too short")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return c, errors.New("checksum mismatch")
	}
	if string(b[:4]) != string(cursorMagic[:]) || binary.LittleEndian.Uint16(b[4:]) != cursorVersion {
		return c, errors.New("bad magic or version")
	}
	if string(b[8:24]) != string(inc[:]) {
		return c, errCursorIncarnation
	}
	c.acks.w = binary.LittleEndian.Uint64(b[24:])
	c.lastSeq = binary.LittleEndian.Uint64(b[32:])
	c.syncedSeq = binary.LittleEndian.Uint64(b[40:])
	nr, nd := binary.LittleEndian.Uint32(b[48:]), binary.LittleEndian.Uint32(b[52:])
	if nr > maxCursorRanges || nd > maxDropped || len(body) != cursorFixedSize+16*int(nr)+32*int(nd) {
		return c, errors.New("bad counts")
	}
	p := body[cursorFixedSize:]
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
		p = p[32:]
		c.dropped = append(c.dropped, d)
	}
	return c, nil
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

// writeFileAtomic replaces dir/name with data so that a crash at any
// point leaves either the old or the new content: write a temporary
// file, fsync it, rename it over the old one, fsync the directory.
func writeFileAtomic(fsys FS, dir, name string, data []byte) error {
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
