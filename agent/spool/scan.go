package spool

import (
	"bytes"
	"errors"
	"io"
)

// readChunk is how much a reader fetches per ReadAt: large enough that a
// segment is read with few sequential syscalls, small for a Pi's memory.
const readChunk = 64 << 10

// window is a sliding read buffer over a file. Slices it returns are
// valid until the next call.
type window struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64 // buf holds the file's bytes [off, off+len(buf))
	err  error // first read error other than EOF
}

func newWindow(r io.ReaderAt, size int64, buf []byte) *window {
	return &window{r: r, size: size, buf: buf[:0]}
}

// peek returns up to n bytes at off; fewer at the end of the file or
// after a read error (then w.err is set).
func (w *window) peek(off int64, n int) []byte {
	if off >= w.size {
		return nil
	}
	end := min(off+int64(n), w.size)
	if off >= w.off && end <= w.off+int64(len(w.buf)) {
		return w.buf[off-w.off : end-w.off]
	}
	want := min(max(int64(n), readChunk), w.size-off)
	if int64(cap(w.buf)) < want {
		w.buf = make([]byte, want)
	}
	w.buf = w.buf[:want]
	k, err := w.r.ReadAt(w.buf, off)
	if err != nil && !errors.Is(err, io.EOF) && w.err == nil {
		w.err = err
	}
	w.buf, w.off = w.buf[:k], off
	return w.buf[:min(int64(k), end-off)]
}

// findMagic returns the offset of the next record marker at or after
// from, or -1.
func (w *window) findMagic(from int64) int64 {
	for from < w.size {
		b := w.peek(from, readChunk)
		if i := bytes.Index(b, recordMagic[:]); i >= 0 {
			return from + int64(i)
		}
		if len(b) < len(recordMagic) || w.err != nil {
			return -1
		}
		from += int64(len(b) - len(recordMagic) + 1)
	}
	return -1
}

// bounds are what a record in a segment must satisfy besides its CRC:
// seqs strictly increase, are at least the segment's first seq (its
// name) and below the next segment's. A record that breaks them is
// stale (left by a failed write) and is skipped like a corrupt one.
type bounds struct {
	prev uint64 // the record must be > prev
	hi   uint64 // ... and < hi
}

// record decodes a valid record at off; ok is false when there is none.
func (w *window) record(off int64, b bounds) (seq uint64, data []byte, n int, ok bool) {
	h := w.peek(off, RecordHeaderSize)
	l := recordLen(h)
	if l == 0 {
		return 0, nil, 0, false
	}
	seq, data, n, err := DecodeRecord(w.peek(off, l))
	if err != nil || seq <= b.prev || seq >= b.hi {
		return 0, nil, 0, false
	}
	return seq, data, n, true
}

// next returns the next valid record at or after off, skipping corrupt
// regions by searching for the next marker. skipped is how many bytes
// before the record were not part of a valid record. ok is false when
// there is no valid record left (then skipped counts to the end).
func (w *window) next(off int64, b bounds) (seq uint64, data []byte, at int64, skipped int64, ok bool) {
	start := off
	for off < w.size {
		if seq, data, _, ok := w.record(off, b); ok {
			return seq, data, off, off - start, true
		}
		if w.err != nil {
			break
		}
		if off = w.findMagic(off + 1); off < 0 {
			break
		}
	}
	return 0, nil, w.size, w.size - start, false
}

// corruptRegion is a run of bytes between valid records.
type corruptRegion struct {
	off, n int64
	after  uint64 // seq of the valid record before it in the segment, or 0
	before uint64 // seq of the valid record after it
}

// scanResult is what scanning one segment found.
type scanResult struct {
	hdr     segHeader
	hdrErr  error
	end     int64 // offset just after the last valid record (or the header)
	records int64
	last    uint64
	runs    []seqRange
	index   []indexEntry
	corrupt []corruptRegion // regions followed by a valid record
	tail    int64           // bytes after the last valid record
	readErr error
}

// indexEvery is the spacing of the sparse offset index: Pending starts
// reading at most this many bytes before the record it wants.
const indexEvery = 16 << 10

type indexEntry struct {
	seq uint64
	off int64
}

// addRecord updates per-segment bookkeeping for a record at off.
func addRecord(runs *[]seqRange, index *[]indexEntry, seq uint64, off int64) {
	if n := len(*runs); n > 0 && (*runs)[n-1].hi+1 == seq {
		(*runs)[n-1].hi = seq
	} else {
		*runs = append(*runs, seqRange{seq, seq})
	}
	if n := len(*index); n == 0 || off-(*index)[n-1].off >= indexEvery {
		*index = append(*index, indexEntry{seq, off})
	}
}

// scanSegment reads every record of one segment. Records must be at
// least first (from the file name), above prev (the previous segment's
// last record) and below hi (the next sound segment's first seq).
func scanSegment(r io.ReaderAt, size int64, first, prev, hi uint64, buf []byte) scanResult {
	w := newWindow(r, size, buf)
	var res scanResult
	res.hdr, res.hdrErr = decodeSegHeader(w.peek(0, segHeaderSize))
	if res.hdrErr == nil && res.hdr.first != first {
		res.hdrErr = errors.New("segment header: first seq does not match the file name")
	}
	if size < segHeaderSize {
		res.tail = size
		res.readErr = w.err
		return res
	}
	res.end = segHeaderSize
	b := bounds{prev: prev, hi: hi}
	if first > 0 {
		b.prev = max(prev, first-1)
	}
	off := int64(segHeaderSize)
	for {
		seq, data, at, skipped, ok := w.next(off, b)
		if !ok {
			res.tail = skipped
			break
		}
		if skipped > 0 {
			res.corrupt = append(res.corrupt, corruptRegion{off: off, n: skipped, after: res.last, before: seq})
		}
		addRecord(&res.runs, &res.index, seq, at)
		res.records++
		res.last, b.prev = seq, seq
		off = at + RecordHeaderSize + int64(len(data))
		res.end = off
	}
	res.readErr = w.err
	return res
}
