package spool

import (
	"io"
	"io/fs"
	"os"
)

// FS is the filesystem the spool works on. OSFS is the real one; the
// spooltest package has one that simulates crashes, power cuts, torn
// writes, corruption and I/O errors.
//
// Names are slash- or OS-separated paths as given by Options.Dir joined
// with filepath.Join.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	ReadDir(name string) ([]fs.DirEntry, error)
	MkdirAll(path string, perm fs.FileMode) error
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes the directory's entries (created, renamed and
	// removed files) durable: an fsync of the directory itself.
	SyncDir(name string) error
}

// File is an open file. The spool writes with WriteAt at offsets it
// tracks itself (not Write at the file position), so a failed, partial
// write can never shift where the next record lands.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes the file's data durable. The OS implementation uses
	// fdatasync on Linux: the spool never depends on timestamps.
	Sync() error
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	Close() error
}

// OSFS is the operating system's filesystem.
type OSFS struct{}

var _ FS = OSFS{}

func (OSFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (OSFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (OSFS) Remove(name string) error                     { return os.Remove(name) }
func (OSFS) ReadDir(name string) ([]fs.DirEntry, error)   { return os.ReadDir(name) }
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }
func (OSFS) Stat(name string) (fs.FileInfo, error)        { return os.Stat(name) }

func (OSFS) SyncDir(name string) error {
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type osFile struct{ f *os.File }

func (o osFile) ReadAt(p []byte, off int64) (int, error)  { return o.f.ReadAt(p, off) }
func (o osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }
func (o osFile) Sync() error                              { return datasync(o.f) }
func (o osFile) Truncate(size int64) error                { return o.f.Truncate(size) }
func (o osFile) Stat() (fs.FileInfo, error)               { return o.f.Stat() }
func (o osFile) Close() error                             { return o.f.Close() }
