package spooltest

import (
	"io/fs"
	"sync"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// PageSize is the unit a flash card and the page cache write in.
const PageSize = 4096

// Counts are what a CountingFS saw.
type Counts struct {
	Writes       int64 // WriteAt calls
	BytesWritten int64 // bytes passed to WriteAt
	BytesRead    int64
	Syncs        int64 // File.Sync calls (fdatasync)
	DirSyncs     int64
	// SyncedPageBytes rounds each sync up to whole pages: a file Sync
	// costs PageSize for every page written since the file's previous
	// sync, a directory sync one page. It approximates what reaches the
	// card.
	SyncedPageBytes int64
	Opens           int64
	Renames         int64
	Removes         int64
}

// CountingFS wraps an FS and counts its I/O.
type CountingFS struct {
	FS spool.FS
	mu sync.Mutex
	c  Counts
}

// NewCountingFS wraps fsys.
func NewCountingFS(fsys spool.FS) *CountingFS { return &CountingFS{FS: fsys} }

var _ spool.FS = (*CountingFS)(nil)

// Counts returns a snapshot of the counters.
func (c *CountingFS) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c
}

// Reset zeroes the counters.
func (c *CountingFS) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c = Counts{}
}

func (c *CountingFS) add(fn func(*Counts)) {
	c.mu.Lock()
	fn(&c.c)
	c.mu.Unlock()
}

func (c *CountingFS) OpenFile(name string, flag int, perm fs.FileMode) (spool.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	c.add(func(k *Counts) { k.Opens++ })
	return &countingFile{File: f, c: c, dirty: map[int64]bool{}}, nil
}

func (c *CountingFS) Rename(oldpath, newpath string) error {
	c.add(func(k *Counts) { k.Renames++ })
	return c.FS.Rename(oldpath, newpath)
}

func (c *CountingFS) Remove(name string) error {
	c.add(func(k *Counts) { k.Removes++ })
	return c.FS.Remove(name)
}

func (c *CountingFS) ReadDir(name string) ([]fs.DirEntry, error) { return c.FS.ReadDir(name) }
func (c *CountingFS) MkdirAll(p string, perm fs.FileMode) error  { return c.FS.MkdirAll(p, perm) }
func (c *CountingFS) Stat(name string) (fs.FileInfo, error)      { return c.FS.Stat(name) }

func (c *CountingFS) SyncDir(name string) error {
	c.add(func(k *Counts) { k.DirSyncs++; k.SyncedPageBytes += PageSize })
	return c.FS.SyncDir(name)
}

type countingFile struct {
	spool.File
	c     *CountingFS
	mu    sync.Mutex
	dirty map[int64]bool // pages written since the last Sync
}

func (f *countingFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.mu.Lock()
	if n > 0 {
		for pg := off / PageSize; pg <= (off+int64(n)-1)/PageSize; pg++ {
			f.dirty[pg] = true
		}
	}
	f.mu.Unlock()
	f.c.add(func(k *Counts) { k.Writes++; k.BytesWritten += int64(len(p)) })
	return n, err
}

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.c.add(func(k *Counts) { k.BytesRead += int64(n) })
	return n, err
}

func (f *countingFile) Sync() error {
	f.mu.Lock()
	pages := int64(len(f.dirty))
	clear(f.dirty)
	f.mu.Unlock()
	f.c.add(func(k *Counts) { k.Syncs++; k.SyncedPageBytes += pages * PageSize })
	return f.File.Sync()
}
