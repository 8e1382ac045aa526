package spool

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
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
	// is dropped rather than kept for the life of the process.
	keepBufferCap = 1 << 20
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

// loadSegments scans the segments in order and rebuilds the index.
func (s *Spool) loadSegments(segFiles []segFile) {
	var gaps []seqRange // seqs that corrupt regions may have held
	var maxRec uint64
	unreadable := false // some records could not be read, so may still be there
	// A segment's records are below the next segment's first seq. Only
	// segments with a sound header count as "next", so a damaged or
	// foreign file cannot invalidate the records before it.
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
	var prevLast uint64 // last record of the previous kept segment
	for i, sf := range segFiles {
		path := filepath.Join(s.dir, sf.name)
		hi := bound[i]
		nextName := uint64(math.MaxUint64) // records here are below the next file's name
		if i+1 < len(segFiles) {
			nextName = segFiles[i+1].first
		}
		isLast := i == len(segFiles)-1
		if !isLast && hi-1 <= s.persisted.acks.w {
			// Every seq it can hold is acknowledged, and the fsynced
			// cursor says so: no need to read it.
			if !s.readOnly {
				s.remove(sf.name)
			}
			continue
		}
		f, err := s.fs.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			s.log.Error("spool: cannot open segment; skipping it until the next Open", "file", path, "err", err)
			unreadable = true
			s.unreadable = append(s.unreadable, seqRange{sf.first, nextName - 1})
			continue
		}
		size := int64(0)
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		res := scanSegment(f, size, sf.first, prevLast, hi, s.rbuf)
		seg := &segment{first: sf.first, hi: hi, path: path, end: res.end, disk: size, records: res.records,
			last: res.last, runs: res.runs, index: res.index, rf: f}
		if res.readErr != nil {
			// Keep what was read; never append after an unreadable part.
			s.log.Error("spool: read error in segment; using the records before it", "file", path, "err", res.readErr)
			seg.badHeader = true
			unreadable = true
			s.unreadable = append(s.unreadable, seqRange{max(sf.first, res.last+1), nextName - 1})
			res.tail = 0
		}
		if res.hdrErr == nil && res.hdr.incarnation != s.inc {
			res.hdrErr = errors.New("segment header: written by another incarnation of the spool")
			res.records = 0 // its records are not ours
		}
		if res.hdrErr != nil && res.records == 0 {
			torn := isLast && (size < segHeaderSize || allZero(f, size))
			f.Close()
			if torn {
				// A segment torn while being created.
				s.st.TornTails++
				s.st.TornBytes += size
				s.log.Warn("spool: removed a torn new segment", "file", path, "bytes", size)
				if !s.readOnly {
					s.remove(sf.name)
				}
			} else {
				s.st.BadSegments++
				s.log.Error("spool: segment has no valid header or records; set aside", "file", path, "err", res.hdrErr)
				if !s.readOnly {
					s.setAside(sf.name)
				}
			}
			continue
		}
		if res.hdrErr != nil {
			// The records carry their own checksums: a damaged header
			// must not cost the data behind it.
			s.st.BadHeaders++
			seg.badHeader = true
			s.log.Error("spool: segment header damaged; salvaged its records", "file", path, "err", res.hdrErr, "records", res.records)
		}
		for _, c := range res.corrupt {
			s.st.CorruptRegions++
			s.st.CorruptBytes += c.n
			s.log.Error("spool: skipped a corrupt region", "file", path, "offset", c.off, "bytes", c.n)
			lo := sf.first
			if c.after > 0 {
				lo = c.after + 1
			}
			gaps = append(gaps, seqRange{lo, c.before - 1})
		}
		if res.tail > 0 {
			if isLast {
				s.st.TornTails++
				s.st.TornBytes += res.tail
				s.log.Warn("spool: cut a torn write off the end of the last segment", "file", path, "offset", res.end, "bytes", res.tail)
				if !s.readOnly {
					if err := s.truncateSegment(path, res.end); err != nil {
						s.log.Error("spool: cannot truncate the torn tail; sealing the segment", "file", path, "err", err)
						seg.badHeader = true // never append after garbage
					} else {
						seg.disk = res.end
					}
				}
			} else {
				s.st.CorruptRegions++
				s.st.CorruptBytes += res.tail
				s.log.Error("spool: skipped a corrupt region at the end of a segment", "file", path, "offset", res.end, "bytes", res.tail)
				lo := sf.first
				if res.last > 0 {
					lo = res.last + 1
				}
				gaps = append(gaps, seqRange{lo, nextName - 1})
			}
		}
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
			continue
		}
		maxRec, prevLast = max(maxRec, res.last), res.last
		s.segs = append(s.segs, seg)
		s.total += seg.disk
	}
	s.lastSeq = max(s.cur.lastSeq, s.cur.acks.max(), maxRec)
	for _, d := range s.cur.dropped {
		s.lastSeq = max(s.lastSeq, d.Last)
	}
	for _, g := range gaps {
		s.reportGap(g.lo, g.hi, DropCorrupt)
	}
	// Records the last cursor says were durable but are not here: the
	// storage lost them (a card that acknowledged a flush it did not do).
	if s.cur.syncedSeq > maxRec && !unreadable {
		s.reportGap(maxRec+1, s.cur.syncedSeq, DropLost)
	}
	s.syncedSeq, s.durable = s.lastSeq, maxRec
	if s.readOnly || len(s.segs) == 0 {
		return
	}
	// After a SIGKILL the last segment's tail may be only in the page
	// cache: sync it before claiming it durable. (Sealed segments were
	// synced when sealed.)
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

// remove deletes a file of the spool, logging failures: a leftover file
// is found and handled again at the next Open.
func (s *Spool) remove(name string) {
	if err := s.fs.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("spool: cannot remove file", "err", err)
		return
	}
	s.dirDirty = true
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
