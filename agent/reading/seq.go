package reading

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sequencer hands out the device's sequence numbers: one counter for all
// sensors, strictly increasing, never repeated across restarts, and without
// gaps across a process restart.
//
// Writing the counter on every reading would wear the SD card, so the
// sequencer leases blocks: the file holds the end of the current lease and
// the kernel's boot id, and is rewritten (atomically, fsynced) only when a
// lease runs out. At start:
//   - same boot and same mount of the filesystem (the process crashed or
//     was restarted): the page cache survived, so the spool's last record
//     is the last number handed out and numbering continues right after
//     it, without a gap;
//   - new boot (maybe a power cut, which may have lost the spool's unsynced
//     tail), or the filesystem mounted again since (a card error turned
//     it read-only, and fsck and a new mount followed without a reboot:
//     what was not yet written is gone as after a power cut): numbering
//     resumes at the lease end, so numbers may skip ahead but a number
//     that may have been published is never reused.
//
// The sequencer never refuses to hand out a number: a reading must never
// be lost for want of one. When the lease cannot be written (read-only or
// full disk, unreadable files), Next says the number is not durable: it
// may be handed out again by a later run, so the caller must publish it
// under an incarnation of its own (see the agent's volatile incarnation).
// Persisting is tried again every RetryInterval.
type Sequencer struct {
	mu      sync.Mutex
	path    string
	boot    string
	mount   uint64 // the state dir's mount id; 0 = unknown
	spool   string
	next    uint64
	limit   uint64 // first seq not covered by the lease
	lease   uint64
	durable bool  // the lease up to limit is on disk
	trusted bool  // the start is known safe, so a lease may be written from it
	err     error // why numbers are not durable
	retryAt time.Time
	now     func() time.Time
}

// DefaultLease is the block size reserved per write of the seq file.
const DefaultLease = 10000

// RetryInterval is how often a lease that could not be written is tried
// again.
const RetryInterval = 10 * time.Second

// The seq file: "SEQ4", the lease end (uint64), the boot id (36 bytes),
// the spool incarnation (32), the mount id of the state dir's filesystem
// (uint64), a CRC32C; little-endian. SEQ3 files (without the mount id)
// are still read.
const (
	seqMagic     = "SEQ4"
	seqMagicV3   = "SEQ3"
	bootIDLen    = 36 // a UUID as the kernel prints it
	incLen       = 32 // a spool incarnation id, hex
	seqFileLen   = 4 + 8 + bootIDLen + incLen + 8 + 4
	seqFileLenV3 = 4 + 8 + bootIDLen + incLen + 4
)

// BootIDFile is where Linux publishes the current boot's random id.
const BootIDFile = "/proc/sys/kernel/random/boot_id"

// BootID returns the current boot id, or "" when unknown (treated as a
// new boot: the safe side).
func BootID() string {
	b, err := os.ReadFile(BootIDFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SeqOptions say where the counter lives and what the spool holds.
type SeqOptions struct {
	Dir   string // the state directory; created if needed
	Lease uint64 // 0 = DefaultLease
	Boot  string // the current boot id
	// Spool is the spool's incarnation ("" without a spool), Last the
	// highest seq it holds (0 if none).
	Spool string
	Last  uint64
	Now   func() time.Time // nil = time.Now; paces the retries
}

// OpenSequencer loads the seq file in o.Dir (creating dir and file if
// needed). It always returns a usable Sequencer; a non-nil error says why
// its numbers are not durable (yet), for the caller to log.
func OpenSequencer(o SeqOptions) (*Sequencer, error) {
	if o.Lease == 0 {
		o.Lease = DefaultLease
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Sequencer{path: filepath.Join(o.Dir, "seq"), lease: o.Lease, boot: o.Boot, spool: o.Spool,
		next: o.Last + 1, trusted: true, now: o.Now, mount: MountID(o.Dir)}
	s.limit = s.next + s.lease // in memory until a lease is written
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		// Nothing was ever leased here: any start is safe once it can
		// be written.
		return s, s.fail(fmt.Errorf("state dir %s: %w (state_dir must be a writable directory)", o.Dir, err))
	}
	limit, fileBoot, fileSpool, fileMount, err := readSeqFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil && !errors.Is(err, errCorrupt):
		// Unreadable (I/O error, permissions): what it leased is unknown.
		s.trusted = false
		return s, s.fail(fmt.Errorf("seq file %s: %w", s.path, err))
	case err != nil:
		// A corrupt counter must not stop the agent, and must not let
		// numbers repeat: the backup written before each rename holds
		// the previous lease, and the current lease is at most one
		// lease beyond it.
		prev, _, _, _, perr := readSeqFile(s.path + ".prev")
		if perr != nil {
			s.trusted = false
			return s, s.fail(fmt.Errorf("seq file %s: %w; backup: %v: numbers cannot be known safe, so readings carry a volatile incarnation until the spool directory is replaced (or remove both files to restart numbering at 1)", s.path, err, perr))
		}
		s.next = max(s.next, prev+s.lease)
	case fileBoot != o.Boot || o.Boot == "" || fileSpool != o.Spool || o.Spool == "" || s.next+s.lease < limit ||
		fileMount != 0 && fileMount != s.mount:
		// A new boot or mount, or not the spool the numbers were
		// written to: the last number handed out is unknown, the lease
		// end is safe.
		s.next = max(s.next, limit)
	}
	s.limit = s.next + s.lease
	if err := s.extend(); err != nil {
		return s, s.fail(err)
	}
	return s, nil
}

// fail records why numbers are not durable and when to try again.
func (s *Sequencer) fail(err error) error {
	s.durable, s.err = false, err
	s.retryAt = s.now().Add(RetryInterval)
	return err
}

// Next returns the next sequence number, and whether it is durable: a
// lease covering it is on disk, so no later run can hand it out again.
func (s *Sequencer) Next() (n uint64, durable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trusted && (s.durable && s.next >= s.limit || !s.durable && !s.now().Before(s.retryAt)) {
		if err := s.extend(); err != nil {
			s.fail(err)
		}
	}
	if s.next >= s.limit {
		s.limit = s.next + s.lease // carry on in memory
	}
	n = s.next
	s.next++
	return n, s.durable
}

// Err says why numbers are not durable, nil when they are.
func (s *Sequencer) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.durable {
		return nil
	}
	return s.err
}

// Rebind moves the counter to a new spool incarnation (the old spool was
// deleted or could not be opened before) holding seqs up to last: the
// lease is written again for it. Numbers go on from where they were, so
// they stay increasing within the process.
func (s *Sequencer) Rebind(spool string, last uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spool = spool
	s.next = max(s.next, last+1)
	// A new incarnation has no numbers yet: any start is safe.
	s.trusted = true
	if err := s.extend(); err != nil {
		return s.fail(err)
	}
	return nil
}

// Peek returns the number Next will hand out next.
func (s *Sequencer) Peek() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// extend persists a new lease [next, next+lease).
func (s *Sequencer) extend() error {
	limit := s.next + s.lease
	buf := make([]byte, seqFileLen)
	copy(buf[:4], seqMagic)
	binary.LittleEndian.PutUint64(buf[4:12], limit)
	copy(buf[12:12+bootIDLen], s.boot)
	copy(buf[12+bootIDLen:12+bootIDLen+incLen], s.spool)
	binary.LittleEndian.PutUint64(buf[12+bootIDLen+incLen:], s.mount)
	binary.LittleEndian.PutUint32(buf[seqFileLen-4:], crc32.Checksum(buf[:seqFileLen-4], castagnoli))
	if err := os.MkdirAll(filepath.Dir(s.path), 0o750); err != nil {
		return fmt.Errorf("seq file: %w", err)
	}
	if old, err := os.ReadFile(s.path); err == nil && validSeqFile(old) {
		// Keep the previous lease as a fallback for a damaged file.
		if err := WriteFileSync(s.path+".prev", old); err != nil {
			return fmt.Errorf("seq file: %w", err)
		}
	}
	if err := WriteFileSync(s.path, buf); err != nil {
		return fmt.Errorf("seq file: %w", err)
	}
	s.limit, s.durable, s.err = limit, true, nil
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errCorrupt = errors.New("corrupt (bad length, magic or checksum)")

func validSeqFile(b []byte) bool {
	n := len(b)
	switch {
	case n == seqFileLen && string(b[:4]) == seqMagic:
	case n == seqFileLenV3 && string(b[:4]) == seqMagicV3:
	default:
		return false
	}
	return binary.LittleEndian.Uint32(b[n-4:]) == crc32.Checksum(b[:n-4], castagnoli)
}

func readSeqFile(path string) (limit uint64, boot, spool string, mount uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", "", 0, err
	}
	if !validSeqFile(b) {
		return 0, "", "", 0, errCorrupt
	}
	boot = strings.TrimRight(string(b[12:12+bootIDLen]), "\x00")
	spool = strings.TrimRight(string(b[12+bootIDLen:12+bootIDLen+incLen]), "\x00")
	if len(b) == seqFileLen {
		mount = binary.LittleEndian.Uint64(b[12+bootIDLen+incLen:])
	}
	return binary.LittleEndian.Uint64(b[4:12]), boot, spool, mount, nil
}

// MountID returns the id the kernel gives the mount holding dir (the
// first field of /proc/self/mountinfo), or 0 when unknown. It changes
// whenever a filesystem is mounted again, even within one boot.
func MountID(dir string) uint64 {
	path, err := filepath.Abs(dir)
	if err == nil {
		if p, err := filepath.EvalSymlinks(path); err == nil {
			path = p
		}
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0
	}
	var id uint64
	best := -1
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if !(path == mp || mp == "/" || strings.HasPrefix(path, mp+"/")) || len(mp) < best {
			continue
		}
		// The last of equally long ones is mounted on top.
		if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
			id, best = n, len(mp)
		}
	}
	return id
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// WriteFileSync replaces path with data so that after a crash or power cut
// the file holds either the old or the new content: temp file, fsync,
// rename, fsync of the directory.
func WriteFileSync(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
