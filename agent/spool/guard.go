package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// This file keeps the spool working when the world around it misbehaves:
// a second process on the same directory (the lock), a disk the spool
// filled itself (the reserve), a size limit larger than the disk (the
// cap), and a directory deleted while in use (presence checks and
// Salvage).

var (
	// ErrLocked means another process holds the lock: two agents on one
	// spool would hand out the same sequence numbers.
	ErrLocked = errors.New("in use by another process")
	// ErrGone means the spool's directory or files were deleted, or the
	// directory replaced, while it was open. What it held is only in files
	// that no longer have a name; Salvage reads it back.
	ErrGone = errors.New("spool: deleted while in use")

	errLockHeld = errors.New("lock held")
)

const (
	lockName    = "lock"
	reserveName = "reserve"
	// reserveBytes stay allocated beside the segments and are given back
	// when a full disk stops the cursor from being written: the cursor
	// must be persisted before acknowledged segments may be deleted, so
	// without the reserve a spool that filled its own disk could never
	// free it again.
	reserveBytes = 64 << 10
	// diskSlack is left free on the filesystem, besides the reserve, for
	// what lives beside the segments: cursor, meta, the dead-letter file,
	// the agent's sequence file.
	diskSlack = 256 << 10
)

// Locker is implemented by filesystems with advisory locks (OSFS: flock).
// A spool opened for writing holds one on Dir/lock.
type Locker interface {
	Lock(path string) (io.Closer, error)
}

// SpaceReporter is implemented by filesystems that can say how many bytes
// may still be written beside dir (OSFS: statfs).
type SpaceReporter interface {
	Available(dir string) (int64, error)
}

// Lock implements Locker.
func (OSFS) Lock(path string) (io.Closer, error) { return LockFile(path) }

// Available implements SpaceReporter.
func (OSFS) Available(dir string) (int64, error) { return available(dir) }

// Lock is an exclusive advisory lock on a file, held until Close or the
// end of the process, however it ends.
type Lock struct{ f *os.File }

// Close releases the lock.
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// LockFile takes an exclusive lock on path (created if missing) and writes
// this process's PID into it, so that a second process can say who holds
// it. When another process holds it the error wraps ErrLocked and names
// that process's PID. On a read-only filesystem an existing file is
// locked without writing the PID.
func LockFile(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	writable := err == nil
	if err != nil {
		var rerr error
		if f, rerr = os.Open(path); rerr != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, errLockHeld) {
			return nil, fmt.Errorf("%s: %w%s", path, ErrLocked, lockHolder(path))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if writable {
		// Best effort: the PID only makes a second process's message
		// more useful.
		if f.Truncate(0) == nil {
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
	}
	return &Lock{f: f}, nil
}

// lockHolder returns " (pid N)" from a lock file, or "".
func lockHolder(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, 32)
	n, _ := f.Read(b)
	pid := strings.TrimSpace(string(b[:n]))
	if _, err := strconv.Atoi(pid); err != nil {
		return ""
	}
	return " (pid " + pid + ")"
}

// lockDir takes the spool's lock. Only ErrLocked is fatal: a filesystem
// that cannot hold a lock file (read-only, full) must not stop the agent.
func (s *Spool) lockDir() error {
	l, ok := s.fs.(Locker)
	if !ok {
		return nil
	}
	c, err := l.Lock(filepath.Join(s.dir, lockName))
	if errors.Is(err, ErrLocked) {
		return fmt.Errorf("spool %s: %w: stop the other sensor-agent first, or give each its own state_dir and spool.dir", s.dir, err)
	}
	if err != nil {
		s.log.Warn("spool: cannot lock the directory; a second agent on it would not be noticed", "dir", s.dir, "err", err)
		return nil
	}
	s.lock = c
	return nil
}

// ensureReserve (re)creates the reserve file, best effort.
func (s *Spool) ensureReserve() {
	if s.readOnly || s.hasReserve {
		return
	}
	path := filepath.Join(s.dir, reserveName)
	if st, err := s.fs.Stat(path); err == nil && st.Size() >= reserveBytes {
		s.hasReserve = true
		return
	}
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err == nil {
		if _, err = f.WriteAt(make([]byte, reserveBytes), 0); err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = s.fs.Remove(path)
		return
	}
	s.hasReserve = true
}

// releaseReserve gives the reserve's space back to the filesystem.
func (s *Spool) releaseReserve() bool {
	if !s.hasReserve {
		return false
	}
	if err := s.fs.Remove(filepath.Join(s.dir, reserveName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	s.hasReserve = false
	s.dirDirty = true
	s.log.Warn("spool: the disk is full: used the reserved space to write the cursor, so that delivered records can be deleted", "dir", s.dir)
	return true
}

// writeSmall replaces a small file of the spool (cursor, meta) atomically,
// using the reserve when the disk is full.
func (s *Spool) writeSmall(name string, data []byte) error {
	err := WriteFileAtomic(s.fs, s.dir, name, data)
	if err != nil && errors.Is(err, syscall.ENOSPC) && s.releaseReserve() {
		_ = s.fs.Remove(filepath.Join(s.dir, name+".tmp"))
		err = WriteFileAtomic(s.fs, s.dir, name, data)
	}
	return err
}

// fitToDisk sets MaxBytes to the configured limit or, when the
// filesystem cannot hold that, to what it can: a spool that fills its
// disk cannot write its cursor nor the agent its sequence file, while one
// that stops at a limit drops its oldest segment and says so. It runs at
// Open and again whenever the lowered limit is reached, so a disk that
// was full only for a while does not keep the spool small.
func (s *Spool) fitToDisk() {
	sr, ok := s.fs.(SpaceReporter)
	if !ok {
		return
	}
	avail, err := sr.Available(s.dir)
	if err != nil {
		s.log.Debug("spool: free space unknown", "dir", s.dir, "err", err)
		return
	}
	prev := s.maxBytes
	budget := s.total + avail - diskSlack
	s.maxBytes = max(min(s.wantBytes, budget), 2*s.minSeg)
	// Segments small enough that several fit in the limit.
	s.segBytes = max(min(s.wantSeg, s.maxBytes/4), s.minSeg)
	s.maxBytes = max(s.maxBytes, 2*s.segBytes)
	s.maxRec = int(min(MaxRecordSize, s.segBytes-segHeaderSize-RecordHeaderSize))
	switch {
	case s.maxBytes < prev && s.maxBytes < s.wantBytes:
		s.log.Warn("spool: the size limit is more than the filesystem can hold; using what it can: lower spool.max_bytes or free space",
			"dir", s.dir, "max_bytes", s.wantBytes, "free_bytes", avail, "spool_bytes", s.total, "using_bytes", s.maxBytes)
	case s.maxBytes > prev:
		s.log.Info("spool: the filesystem has room again; size limit raised", "dir", s.dir, "using_bytes", s.maxBytes,
			"max_bytes", s.wantBytes)
	}
}

// checkPresent notices that the spool was deleted under it: the
// directory gone or replaced, its meta file gone, or the active segment
// unlinked. Records written after that would be lost when the process
// ends, so the caller must move them (Salvage).
func (s *Spool) checkPresent() error {
	if s.goneErr != nil {
		return s.goneErr
	}
	why := ""
	if fi, err := s.fs.Stat(s.dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			why = "the directory was deleted"
		}
	} else if same, known := sameInode(fi, s.dirInfo); known && !same {
		why = "the directory was replaced by another one"
	}
	if why == "" && s.metaOK {
		if _, err := s.fs.Stat(filepath.Join(s.dir, metaName)); errors.Is(err, fs.ErrNotExist) {
			why = "its meta file was deleted"
			segsThere := true
			for _, seg := range s.segs {
				if _, err := s.fs.Stat(seg.path); errors.Is(err, fs.ErrNotExist) {
					segsThere, why = false, "its files were deleted"
					break
				}
			}
			// Only the meta file: write it again; the segments say who
			// they are.
			if segsThere && s.writeSmall(metaName, encodeMeta(s.inc)) == nil {
				why = ""
				s.log.Warn("spool: meta file deleted: written again", "dir", s.dir)
			}
		}
	}
	if why == "" && s.af != nil {
		if fi, err := s.af.Stat(); err == nil && unlinked(fi) {
			why = "the segment being written was deleted"
		}
	}
	if why == "" {
		return nil
	}
	s.goneErr = fmt.Errorf("%w: %s: %s", ErrGone, s.dir, why)
	return s.goneErr
}

// Salvage reads back a spool that was deleted while in use (ErrGone):
// it calls fn for every unacknowledged record it can still read from the
// files it has open, oldest first, and returns what it could not read
// and the drop reports not yet handed out, with Incarnation set to this
// spool's. Records' Data are fn's to keep. It then closes the spool
// without writing anything. It stops at fn's first error and returns it.
func (s *Spool) Salvage(fn func(Record) error) ([]DroppedRange, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	defer func() {
		s.closeFiles()
		s.closed = true
	}()
	var lost []DroppedRange
	for _, seg := range s.segs {
		if seg.last <= s.cur.acks.w {
			continue
		}
		var ferr error
		read := uint64(0) // highest seq passed to fn
		err := s.scanRecords(seg, func(seq uint64, data []byte) bool {
			if s.cur.acks.contains(seq) {
				return true
			}
			if ferr = fn(Record{Seq: seq, Data: append([]byte(nil), data...)}); ferr != nil {
				return false
			}
			read = seq
			return true
		})
		if ferr != nil {
			return lost, ferr
		}
		if err != nil || read < seg.last {
			// What could not be read is gone with the files.
			lost = append(lost, s.unacked(seg, read+1, DropDeleted)...)
		}
	}
	for _, d := range s.cur.dropped[s.taken:] {
		lost = append(lost, s.resolve(d))
	}
	return lost, nil
}

// Discard removes what is left of a spool in dir after Salvage read it
// back (only some of its files were deleted), so that a new spool there
// does not adopt it. Files that are not the spool's are left alone.
func Discard(dir string, fsys FS) error {
	if fsys == nil {
		fsys = OSFS{}
	}
	entries, err := fsys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		_, seg := parseSegName(name)
		switch {
		case seg, name == metaName, name == cursorName, name == liveCursorName, name == reserveName, name == lockName,
			strings.HasSuffix(name, ".tmp"):
			if err := fsys.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// unacked returns the unacknowledged seqs of seg from from on, as ranges.
func (s *Spool) unacked(seg *segment, from uint64, reason DropReason) []DroppedRange {
	var out []DroppedRange
	for _, r := range seg.runs {
		for x := s.cur.acks.nextUncovered(max(r.lo, from)); x <= r.hi; x = s.cur.acks.nextUncovered(x + 1) {
			if n := len(out); n > 0 && out[n-1].Last+1 == x {
				out[n-1].Last = x
				out[n-1].Count++
				continue
			}
			out = append(out, DroppedRange{First: x, Last: x, Count: 1, Reason: reason, Incarnation: s.incHex})
		}
	}
	return out
}

// resolve fills in the spool's own incarnation.
func (s *Spool) resolve(d DroppedRange) DroppedRange {
	if d.Incarnation == "" {
		d.Incarnation = s.incHex
	}
	return d
}
