package spool

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a spool.
type Options struct {
	// Dir holds the spool's files; created if missing.
	Dir string
	// MaxBytes is the hard cap on the bytes of all segments; default
	// 64 MiB, at least 2*SegmentBytes. Before an append would pass it,
	// the oldest segment is deleted, acknowledged or not, and its
	// unacknowledged records are reported by TakeDropped.
	MaxBytes int64
	// SegmentBytes is the size at which the active segment is sealed
	// and a new one started: default 4 MiB, at most MaxBytes/4, at least
	// 64 KiB.
	SegmentBytes int64
	// SyncInterval is the power-cut loss window the caller wants:
	// NextSync and SyncDue schedule Sync calls at most this often while
	// there is unsynced data. 0 means "sync after every group": SyncDue
	// is true as soon as anything is unsynced. Sync itself always syncs.
	SyncInterval time.Duration
	// CursorInterval is how often, at most, Sync persists a changed
	// cursor (acknowledgements). Default: SyncInterval, at least 1s. A
	// stale cursor only causes duplicates after a crash, never loss.
	CursorInterval time.Duration
	// FS is the filesystem; nil means the real one (OSFS).
	FS FS
	// Logger receives reports of recovered damage and dropped records;
	// nil discards them.
	Logger *slog.Logger
	// Now is the clock for the intervals; nil means time.Now.
	Now func() time.Time
	// Tag, if set, returns the incarnation a record's payload says it
	// was numbered under ("" = this spool's). Loss reports of dropped
	// segments are then split by it.
	Tag func(data []byte) string

	// minSegment overrides the 64 KiB floor of SegmentBytes (tests only,
	// through export_test.go, so they can rotate with a few records).
	minSegment int64
}

// Record is one entry: a caller-assigned sequence number and an opaque
// payload (the agent stores topic + "\n" + reading JSON).
type Record struct {
	Seq  uint64
	Data []byte
}

var (
	// ErrUnavailable wraps storage failures (disk full, read-only
	// filesystem, I/O errors): the caller should keep the data in memory
	// and retry later. The spool stays consistent.
	ErrUnavailable = errors.New("spool: storage unavailable")
	// ErrSeq means an appended seq is not above LastSeq (or is MaxUint64).
	ErrSeq = errors.New("spool: sequence number not increasing")
	// ErrTooLarge means a record or a group does not fit in a segment.
	ErrTooLarge = errors.New("spool: too large")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrReadOnly is returned by writes to a spool opened by Export,
	// ReadStats or Verify.
	ErrReadOnly = errors.New("spool: read-only")
)

const (
	defaultMaxBytes     = 64 << 20
	defaultSegmentBytes = 4 << 20
	// maxCorruptFiles bounds the *.corrupt files kept for inspection,
	// so a card that keeps producing them cannot fill up.
	maxCorruptFiles = 4
	metaName        = "meta"
	corruptSuffix   = ".corrupt"
	// pendingBatch bounds the records read per lock hold in Pending, so
	// a long backlog drain never holds up Append for long.
	pendingBatch      = 256
	pendingBatchBytes = 256 << 10
	// keepBufferCap: a write buffer that grew past this during a burst
	// is dropped rather than kept for the life of the process. 10
	// sensors at 10 Hz write about 15 KiB a second; 256 KiB keeps every
	// steady-state buffer and lets a backlog's or recovery's go (issue 11).
	keepBufferCap = 256 << 10
)

const minSegmentBytes = 64 << 10

// segment is one seg-*.log file.
type segment struct {
	first     uint64 // from the file name
	hi        uint64 // records are below this (the next sound segment's first seq)
	path      string
	end       int64 // just after the last valid record: where reads stop, writes go
	disk      int64 // bytes on disk (>= end when a sealed one has a corrupt tail)
	records   int64
	last      uint64
	runs      []seqRange // the seqs of its records
	index     []indexEntry
	badHeader bool
	rf        File // read handle, opened on demand
}

// Spool is a durable, append-only, segmented log. It is safe for
// concurrent use.
type Spool struct {
	mu       sync.Mutex
	fs       FS
	log      *slog.Logger
	now      func() time.Time
	dir      string
	maxBytes int64
	segBytes int64
	maxRec   int
	syncIvl  time.Duration
	curIvl   time.Duration
	readOnly bool
	closed   bool
	minSeg   int64
	// wantBytes is the configured limit; maxBytes may be lower while the
	// filesystem cannot hold it (fitToDisk).
	wantBytes int64
	wantSeg   int64 // likewise the segment size

	tagOf      func([]byte) string
	lock       io.Closer   // Dir/lock, held while open for writing
	dirInfo    fs.FileInfo // the directory at Open, to notice it was replaced
	metaOK     bool        // the meta file exists (so its deletion means the spool was wiped)
	goneErr    error       // set once the spool was found deleted (ErrGone)
	hasReserve bool
	liveF      File   // cursor.live, written in place after acknowledgements
	liveBuf    []byte // its encoding, reused
	gen        uint64 // highest cursor generation written or read

	inc    [16]byte
	incHex string

	segs  []*segment // by first seq; the last one is the active one when active != nil
	total int64      // sum of disk

	active     *segment
	af         File   // write handle of the active segment
	synced     int64  // bytes of the active segment known durable
	unsynced   []byte // the active segment's bytes [synced, end): rewritten after an fsync error
	needRepair bool   // the file beyond synced cannot be trusted: rewrite it from unsynced
	dirDirty   bool   // entries created or removed since the last directory fsync

	lastSeq, syncedSeq uint64
	// unreadable are the seq ranges of segments (or their parts) that
	// could not be read at Open. The watermark never passes them, so
	// their records are not given up for acknowledged if they can be
	// read at the next Open.
	unreadable []seqRange
	// durable is the highest record seq known to be on disk. It goes to
	// the cursor so the next Open can tell a storage that lost synced
	// records; syncedSeq may be higher (LastSeq, when nothing is
	// unsynced, counts seqs that were acknowledged and deleted).
	durable           uint64
	cur               cursorState // acknowledgements and drop reports (in memory)
	persisted         cursorState // what the cursor file holds
	cursorDirty       bool
	taken             int // leading cur.dropped already returned by TakeDropped
	lastSync, lastCur time.Time

	st   Stats
	wbuf []byte
	rbuf []byte
}

// Stats describe the spool. Counters count since Open.
type Stats struct {
	Incarnation   string
	Segments      int
	Bytes         int64  // segment bytes on disk
	Records       int64  // records in the segments, acknowledged or not
	Pending       int64  // records not yet acknowledged
	OldestPending uint64 // seq of the oldest pending record, 0 if none
	LastSeq       uint64
	SyncedSeq     uint64
	AckedThrough  uint64 // every seq <= this is acknowledged
	AckRanges     int    // acknowledged ranges above AckedThrough

	CorruptRegions int64 // corrupt regions skipped (each may have held several records)
	CorruptBytes   int64
	BadHeaders     int64 // segments with a damaged header whose records were salvaged
	BadSegments    int64 // segment files set aside as *.corrupt
	TornTails      int64 // torn writes cut off the end of the active segment
	TornBytes      int64
	CursorErrors   int64 // unreadable cursor files (acknowledgements lost: duplicates follow)
	MetaErrors     int64

	MaxBytes int64 // the size limit in effect (Options.MaxBytes, lowered to what the filesystem holds)

	DroppedRecords int64 // records dropped since Open (upper bound for corrupt/lost)
	DroppedRanges  int   // drop reports not yet acknowledged with AckDropped

	WriteErrors  int64
	SyncErrors   int64
	CursorWrites int64 // successful cursor persists: each is a small SD-card write
}

// Open opens or creates the spool in opts.Dir and recovers from whatever
// a crash or power cut left: it never refuses to start because of its own
// files (see the package documentation). It fails only when the directory
// cannot be created or read, or the meta file of a new spool cannot be
// written.
func Open(opts Options) (*Spool, error) {
	return open(opts, false)
}

func open(opts Options, readOnly bool) (*Spool, error) {
	s := &Spool{fs: opts.FS, log: opts.Logger, now: opts.Now, dir: opts.Dir, readOnly: readOnly, tagOf: opts.Tag}
	if s.fs == nil {
		s.fs = OSFS{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.maxBytes = opts.MaxBytes
	if s.maxBytes <= 0 {
		s.maxBytes = defaultMaxBytes
	}
	s.segBytes = opts.SegmentBytes
	if s.segBytes <= 0 {
		s.segBytes = defaultSegmentBytes
	}
	minSeg := int64(minSegmentBytes)
	if opts.minSegment > 0 {
		minSeg = opts.minSegment
	}
	s.minSeg = minSeg
	s.segBytes = max(min(s.segBytes, s.maxBytes/4), minSeg)
	s.maxBytes = max(s.maxBytes, 2*s.segBytes)
	s.wantBytes, s.wantSeg = s.maxBytes, s.segBytes
	s.maxRec = int(min(MaxRecordSize, s.segBytes-segHeaderSize-RecordHeaderSize))
	s.syncIvl = max(opts.SyncInterval, 0)
	s.curIvl = opts.CursorInterval
	if s.curIvl <= 0 {
		s.curIvl = max(s.syncIvl, time.Second)
	}
	if s.dir == "" {
		return nil, errors.New("spool: Options.Dir is empty")
	}
	if !readOnly {
		if err := s.fs.MkdirAll(s.dir, 0o750); err != nil {
			return nil, fmt.Errorf("spool: %w: %w", ErrUnavailable, err)
		}
		if err := s.lockDir(); err != nil {
			return nil, err
		}
		s.dirInfo, _ = s.fs.Stat(s.dir)
	}
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, err
	}
	if !readOnly {
		s.ensureReserve()
		s.fitToDisk()
	}
	return s, nil
}

// SetMaxBytes changes the size limit (a reload of the agent's config).
// The filesystem still caps it, as at Open.
func (s *Spool) SetMaxBytes(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		n = defaultMaxBytes
	}
	s.wantBytes = max(n, 2*s.wantSeg)
	s.maxBytes = s.wantBytes
	if !s.readOnly {
		s.fitToDisk()
	}
}

func segName(first uint64) string { return fmt.Sprintf("seg-%016x.log", first) }

// parseSegName accepts exactly seg-<16 lowercase hex digits>.log.
func parseSegName(name string) (uint64, bool) {
	hexPart, ok := strings.CutPrefix(name, "seg-")
	if !ok {
		return 0, false
	}
	hexPart, ok = strings.CutSuffix(hexPart, ".log")
	if !ok || len(hexPart) != 16 || strings.ToLower(hexPart) != hexPart {
		return 0, false
	}
	v, err := strconv.ParseUint(hexPart, 16, 64)
	return v, err == nil && v > 0
}

// Meta file: one line "spool v1 <incarnation, 32 hex> <CRC32C of the
// preceding bytes, 8 hex>\n".
func encodeMeta(inc [16]byte) []byte {
	line := "spool v1 " + hex.EncodeToString(inc[:])
	return fmt.Appendf(nil, "%s %08x\n", line, crc32.Checksum([]byte(line), castagnoli))
}

func decodeMeta(b []byte) ([16]byte, error) {
	var inc [16]byte
	f := strings.Fields(string(b))
	if len(f) != 4 || f[0] != "spool" || f[1] != "v1" || len(f[2]) != 32 {
		return inc, errors.New("not a spool meta file")
	}
	line := strings.Join(f[:3], " ")
	if fmt.Sprintf("%08x", crc32.Checksum([]byte(line), castagnoli)) != f[3] {
		return inc, errors.New("checksum mismatch")
	}
	if _, err := hex.Decode(inc[:], []byte(f[2])); err != nil {
		return inc, err
	}
	return inc, nil
}

// remove deletes a file of the spool, logging failures: a leftover file
// is found and handled again at the next Open.
func (s *Spool) remove(name string) {
	if err := s.fs.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("spool: cannot remove file", "err", err)
		return
	}
	s.dirDirty = true
}

func (s *Spool) closeFiles() {
	if s.liveF != nil {
		s.liveF.Close()
		s.liveF = nil
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	for _, seg := range s.segs {
		if seg.rf != nil {
			seg.rf.Close()
			seg.rf = nil
		}
	}
	if s.af != nil {
		s.af.Close()
		s.af = nil
	}
}
