package spooltest

// The open file handles of a FaultFS and the fs.FileInfo/fs.DirEntry it
// returns.

import (
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"time"
)

type file struct {
	fs       *FaultFS
	ino      *inode
	name     string
	gen      int
	flag     int
	closed   bool
	poisoned bool
}

func (h *file) check(write bool) error {
	if h.closed || h.gen != h.fs.gen {
		return &fs.PathError{Op: "use", Path: h.name, Err: fs.ErrClosed}
	}
	if write && h.flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return &fs.PathError{Op: "write", Path: h.name, Err: os.ErrPermission}
	}
	return nil
}

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check(false); err != nil {
		return 0, err
	}
	if _, err := h.fs.fault(OpRead, h.name); err != nil {
		return 0, err
	}
	if off >= int64(len(h.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *file) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check(true); err != nil {
		return 0, err
	}
	fl, err := h.fs.fault(OpWrite, h.name)
	n := len(p)
	if err != nil {
		n = min(max(fl.Keep, 0), len(p))
	}
	if n > 0 {
		end := off + int64(n)
		if end > int64(len(h.ino.data)) {
			h.ino.data = append(h.ino.data, make([]byte, end-int64(len(h.ino.data)))...)
		}
		copy(h.ino.data[off:], p[:n])
		h.fs.last.name, h.fs.last.ino, h.fs.last.off, h.fs.last.n = h.name, h.ino, off, int64(n)
	}
	if err != nil {
		return n, err
	}
	h.fs.log(OpWrite, path.Base(h.name), strconv.FormatInt(off, 10), strconv.FormatInt(int64(n), 10))
	return n, nil
}

func (h *file) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check(false); err != nil {
		return err
	}
	if fl, err := h.fs.fault(OpSync, h.name); err != nil {
		h.poisoned = true
		if fl.DropDirty {
			d := make([]byte, len(h.ino.data))
			copy(d, h.ino.durable)
			h.ino.data = d
		}
		return err
	}
	if h.poisoned {
		// The error was reported once; the kernel now calls the pages
		// clean. Nothing becomes durable.
		return nil
	}
	h.ino.durable = slices.Clone(h.ino.data)
	h.fs.log(OpSync, path.Base(h.name))
	return nil
}

func (h *file) Truncate(size int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check(true); err != nil {
		return err
	}
	if _, err := h.fs.fault(OpTruncate, h.name); err != nil {
		return err
	}
	if size < int64(len(h.ino.data)) {
		h.ino.data = h.ino.data[:size]
	} else {
		h.ino.data = append(h.ino.data, make([]byte, size-int64(len(h.ino.data)))...)
	}
	h.fs.log(OpTruncate, path.Base(h.name), strconv.FormatInt(size, 10))
	return nil
}

func (h *file) Stat() (fs.FileInfo, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check(false); err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(h.name), size: int64(len(h.ino.data))}, nil
}

func (h *file) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return &fs.PathError{Op: "close", Path: h.name, Err: fs.ErrClosed}
	}
	h.closed = true
	return nil
}

type fileInfo struct {
	name string
	size int64
	dir  bool
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return i.size }
func (i fileInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o750
	}
	return 0o640
}
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return i.dir }
func (i fileInfo) Sys() any           { return nil }

type dirEntry struct{ info fileInfo }

func (d dirEntry) Name() string               { return d.info.name }
func (d dirEntry) IsDir() bool                { return d.info.dir }
func (d dirEntry) Type() fs.FileMode          { return d.info.Mode().Type() }
func (d dirEntry) Info() (fs.FileInfo, error) { return d.info, nil }
