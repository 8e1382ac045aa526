package reading

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Sequencer hands out the device's sequence numbers: one counter for all
// sensors, strictly increasing, never repeated across restarts, and without
// gaps across a process restart.
//
// Writing the counter on every reading would wear the SD card, so the
// sequencer leases blocks: the file holds the end of the current lease and
// the kernel's boot id, and is rewritten (atomically, fsynced) only when a
// lease runs out. At start:
//   - same boot (the process crashed or was restarted): the page cache
//     survived, so the spool's last record is the last number handed out
//     and numbering continues right after it, without a gap;
//   - new boot (maybe a power cut, which may have lost the spool's unsynced
//     tail): numbering resumes at the lease end, so numbers may skip ahead
//     but a number that may have been published is never reused.
type Sequencer struct {
	mu    sync.Mutex
	path  string
	boot  string
	spool string
	next  uint64
	limit uint64 // first seq not covered by the persisted lease
	lease uint64
}

// DefaultLease is the block size reserved per write of the seq file.
const DefaultLease = 10000

const (
	seqMagic   = "SEQ3"
	bootIDLen  = 36 // a UUID as the kernel prints it
	incLen     = 32 // a spool incarnation id, hex
	seqFileLen = 4 + 8 + bootIDLen + incLen + 4
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

// OpenSequencer loads the seq file in dir (creating dir and file if
// needed). boot is the current boot id, spool the spool's incarnation id
// ("" without a spool) and last the highest seq it holds (0 if none).
func OpenSequencer(dir string, lease uint64, boot, spool string, last uint64) (*Sequencer, error) {
	if lease == 0 {
		lease = DefaultLease
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state dir %s: %w (set state_dir to a writable directory)", dir, err)
	}
	s := &Sequencer{path: filepath.Join(dir, "seq"), lease: lease, boot: boot, spool: spool, next: last + 1}
	limit, fileBoot, fileSpool, err := readSeqFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		// A corrupt counter must not stop the agent, and must not let
		// numbers repeat: the backup written before each rename holds
		// the previous lease, and the current lease is at most one
		// lease beyond it.
		prev, _, _, perr := readSeqFile(s.path + ".prev")
		if perr != nil {
			return nil, fmt.Errorf("seq file %s: %w; backup: %v (remove both to restart numbering at 1)", s.path, err, perr)
		}
		s.next = max(s.next, prev+lease)
	case fileBoot != boot || boot == "" || fileSpool != spool || spool == "" || s.next+lease < limit:
		// A new boot, or not the spool the numbers were written to:
		// the last number handed out is unknown, the lease end is safe.
		s.next = max(s.next, limit)
	}
	if err := s.extend(); err != nil {
		return nil, err
	}
	return s, nil
}

// Next returns the next sequence number. It always returns a usable number:
// a reading must never be lost for want of one. A non-nil error means the
// new lease could not be persisted, so numbers may repeat after a reboot;
// the caller should say so loudly.
func (s *Sequencer) Next() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.next >= s.limit {
		if err = s.extend(); err != nil {
			s.limit = s.next + s.lease // carry on in memory
		}
	}
	n := s.next
	s.next++
	return n, err
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
	binary.LittleEndian.PutUint32(buf[seqFileLen-4:], crc32.Checksum(buf[:seqFileLen-4], castagnoli))
	if old, err := os.ReadFile(s.path); err == nil {
		// Keep the previous lease as a fallback for a damaged file.
		if err := WriteFileSync(s.path+".prev", old); err != nil {
			return fmt.Errorf("seq file: %w", err)
		}
	}
	if err := WriteFileSync(s.path, buf); err != nil {
		return fmt.Errorf("seq file: %w", err)
	}
	s.limit = limit
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func readSeqFile(path string) (limit uint64, boot, spool string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", "", err
	}
	if len(b) != seqFileLen || string(b[:4]) != seqMagic ||
		binary.LittleEndian.Uint32(b[seqFileLen-4:]) != crc32.Checksum(b[:seqFileLen-4], castagnoli) {
		return 0, "", "", errors.New("corrupt (bad length, magic or checksum)")
	}
	boot = strings.TrimRight(string(b[12:12+bootIDLen]), "\x00")
	spool = strings.TrimRight(string(b[12+bootIDLen:12+bootIDLen+incLen]), "\x00")
	return binary.LittleEndian.Uint64(b[4:12]), boot, spool, nil
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
