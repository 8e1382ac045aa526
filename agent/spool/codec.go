package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record framing (little-endian):
//
//	off  size  field
//	  0     4  magic F0 5C A1 1E: the sync marker a reader searches for after a corrupt region
//	  4     4  payload length
//	  8     8  sequence number
//	 16     4  CRC32C (Castagnoli) of bytes 0..15 followed by the payload
//	 20     n  payload
const (
	// RecordHeaderSize is the framing overhead of one record.
	RecordHeaderSize = 20
	// MaxRecordSize is the largest payload a record may carry. It bounds
	// how far a reader trusts a length field before the CRC is checked.
	MaxRecordSize = 1 << 20
)

var recordMagic = [4]byte{0xF0, 0x5C, 0xA1, 0x1E}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTruncated means the bytes end before the record does: at the end of
// the active segment this is a torn write.
var ErrTruncated = errors.New("spool: truncated record")

// ErrCorrupt means the bytes are not a valid record.
var ErrCorrupt = errors.New("spool: corrupt record")

// Preallocated so that resynchronising over a corrupt region, which may
// try a decode at many offsets, does not allocate.
var (
	errBadMagic  = fmt.Errorf("%w: bad magic", ErrCorrupt)
	errBadLength = fmt.Errorf("%w: length over %d", ErrCorrupt, MaxRecordSize)
	errBadCRC    = fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
)

// AppendRecord appends the framed record (seq, data) to dst and returns
// the extended slice. len(data) must not exceed MaxRecordSize, or
// DecodeRecord will reject the result; Spool.Append checks this.
func AppendRecord(dst []byte, seq uint64, data []byte) []byte {
	start := len(dst)
	dst = append(dst, recordMagic[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(data)))
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = append(dst, 0, 0, 0, 0)
	dst = append(dst, data...)
	crc := crc32.Update(0, castagnoli, dst[start:start+16])
	crc = crc32.Update(crc, castagnoli, dst[start+RecordHeaderSize:])
	binary.LittleEndian.PutUint32(dst[start+16:], crc)
	return dst
}

// DecodeRecord decodes the record at the start of b. It returns the
// sequence number, the payload (aliasing b) and the number of bytes the
// record occupies. The error is ErrTruncated (wrapped or not) when b ends
// inside an otherwise plausible record, and wraps ErrCorrupt when the
// bytes cannot be a record.
func DecodeRecord(b []byte) (seq uint64, data []byte, n int, err error) {
	m := min(len(b), len(recordMagic))
	if string(b[:m]) != string(recordMagic[:m]) {
		return 0, nil, 0, errBadMagic
	}
	if len(b) < RecordHeaderSize {
		return 0, nil, 0, ErrTruncated
	}
	size := binary.LittleEndian.Uint32(b[4:])
	if size > MaxRecordSize {
		return 0, nil, 0, errBadLength
	}
	n = RecordHeaderSize + int(size)
	if len(b) < n {
		return 0, nil, 0, ErrTruncated
	}
	crc := crc32.Update(0, castagnoli, b[:16])
	crc = crc32.Update(crc, castagnoli, b[RecordHeaderSize:n])
	if crc != binary.LittleEndian.Uint32(b[16:]) {
		return 0, nil, 0, errBadCRC
	}
	return binary.LittleEndian.Uint64(b[8:]), b[RecordHeaderSize:n:n], n, nil
}

// recordLen returns the total length the header at b claims, or 0 when b
// is too short or the length is impossible. Readers use it to know how
// many bytes to fetch before calling DecodeRecord.
func recordLen(b []byte) int {
	if len(b) < RecordHeaderSize {
		return 0
	}
	size := binary.LittleEndian.Uint32(b[4:])
	if size > MaxRecordSize {
		return 0
	}
	return RecordHeaderSize + int(size)
}

// Segment header (little-endian), at offset 0 of every segment file:
//
//	off  size  field
//	  0     4  magic "SPSG"
//	  4     2  format version (1)
//	  6     2  header size (36)
//	  8    16  incarnation of the spool that wrote it
//	 24     8  first sequence number (the one in the file name)
//	 32     4  CRC32C of bytes 0..31
const (
	segHeaderSize = 36
	segVersion    = 1
)

var segMagic = [4]byte{'S', 'P', 'S', 'G'}

type segHeader struct {
	incarnation [16]byte
	first       uint64
}

func appendSegHeader(dst []byte, h segHeader) []byte {
	start := len(dst)
	dst = append(dst, segMagic[:]...)
	dst = binary.LittleEndian.AppendUint16(dst, segVersion)
	dst = binary.LittleEndian.AppendUint16(dst, segHeaderSize)
	dst = append(dst, h.incarnation[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, h.first)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

var (
	errSegShort   = errors.New("segment header: file shorter than the header")
	errSegMagic   = errors.New("segment header: bad magic")
	errSegVersion = errors.New("segment header: unsupported version or size")
	errSegCRC     = errors.New("segment header: checksum mismatch")
)

func decodeSegHeader(b []byte) (segHeader, error) {
	var h segHeader
	if len(b) < segHeaderSize {
		return h, errSegShort
	}
	if string(b[:4]) != string(segMagic[:]) {
		return h, errSegMagic
	}
	if crc32.Checksum(b[:32], castagnoli) != binary.LittleEndian.Uint32(b[32:]) {
		return h, errSegCRC
	}
	if binary.LittleEndian.Uint16(b[4:]) != segVersion || binary.LittleEndian.Uint16(b[6:]) != segHeaderSize {
		return h, errSegVersion
	}
	copy(h.incarnation[:], b[8:24])
	h.first = binary.LittleEndian.Uint64(b[24:])
	return h, nil
}
