package reading

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Sequencer hands out the device's sequence numbers: one counter for all
// sensors, strictly increasing, never repeated across restarts.
//
// Writing the counter on every reading would wear the SD card, so the
// sequencer leases blocks: the file holds the end of the current lease and
// is rewritten (atomically, fsynced) only when a lease runs out. After a
// crash the counter resumes at the lease end, so numbers may skip ahead but
// never repeat.
type Sequencer struct {
	mu    sync.Mutex
	path  string
	next  uint64
	limit uint64 // first seq not covered by the persisted lease
	lease uint64
}

// DefaultLease is the block size reserved per write of the seq file.
const DefaultLease = 10000

const seqMagic = "SEQ1"

// OpenSequencer loads the seq file in dir (creating dir and file if needed).
func OpenSequencer(dir string, lease uint64) (*Sequencer, error) {
	if lease == 0 {
		lease = DefaultLease
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state dir %s: %w (set state_dir to a writable directory)", dir, err)
	}
	s := &Sequencer{path: filepath.Join(dir, "seq"), lease: lease, next: 1}
	start, err := readSeqFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		// A corrupt counter must not stop the agent, and must not let
		// numbers repeat: the backup written before each rename holds
		// the previous lease, and the current lease is at most one
		// lease beyond it.
		prev, perr := readSeqFile(s.path + ".prev")
		if perr != nil {
			return nil, fmt.Errorf("seq file %s: %w; backup: %v (remove both to restart numbering at 1)", s.path, err, perr)
		}
		start = prev + lease
	}
	if start > s.next {
		s.next = start
	}
	if err := s.extend(); err != nil {
		return nil, err
	}
	return s, nil
}

// Next returns the next sequence number. It always returns a usable number:
// a reading must never be lost for want of one. A non-nil error means the
// new lease could not be persisted, so numbers may repeat after a restart;
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

// extend persists a new lease [next, next+lease).
func (s *Sequencer) extend() error {
	limit := s.next + s.lease
	var buf [16]byte
	copy(buf[:4], seqMagic)
	binary.LittleEndian.PutUint64(buf[4:12], limit)
	binary.LittleEndian.PutUint32(buf[12:], crc32.Checksum(buf[:12], crc32.MakeTable(crc32.Castagnoli)))
	if old, err := os.ReadFile(s.path); err == nil {
		// Keep the previous lease as a fallback for a torn write.
		if err := writeFileSync(s.path+".prev", old); err != nil {
			return fmt.Errorf("seq file: %w", err)
		}
	}
	if err := writeFileSync(s.path, buf[:]); err != nil {
		return fmt.Errorf("seq file: %w", err)
	}
	s.limit = limit
	return nil
}

func readSeqFile(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if len(b) != 16 || string(b[:4]) != seqMagic ||
		binary.LittleEndian.Uint32(b[12:]) != crc32.Checksum(b[:12], crc32.MakeTable(crc32.Castagnoli)) {
		return 0, errors.New("corrupt (bad length, magic or checksum)")
	}
	return binary.LittleEndian.Uint64(b[4:12]), nil
}

// writeFileSync replaces path with data so that after a crash the file
// holds either the old or the new content: temp file, fsync, rename, fsync
// of the directory.
func writeFileSync(path string, data []byte) error {
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
