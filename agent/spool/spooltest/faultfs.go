// Package spooltest provides filesystems for testing the spool: FaultFS
// simulates what a Raspberry Pi's SD card and kernel do to a program's
// files when the process is killed, the power is cut mid-write, bits rot
// or the card fails; CountingFS measures what the spool writes.
package spooltest

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// Op names a filesystem operation for fault injection and the journal.
type Op string

const (
	OpOpen     Op = "open"
	OpWrite    Op = "write"
	OpRead     Op = "read"
	OpSync     Op = "sync"
	OpTruncate Op = "truncate"
	OpRename   Op = "rename"
	OpRemove   Op = "remove"
	OpSyncDir  Op = "syncdir"
)

// Fault makes matching operations fail.
type Fault struct {
	Op    Op
	Match string // path.Match pattern on the file's base name; "" matches all
	Skip  int    // let this many matching calls succeed first
	Times int    // fail this many matching calls; 0 means 1, < 0 means until ClearFaults
	Err   error  // e.g. syscall.ENOSPC, syscall.EIO, syscall.EROFS
	// Keep is, for OpWrite, how many bytes of the failing write still
	// land (a short write), like a real ENOSPC mid-write.
	Keep int
	// DropDirty is, for OpSync, what Linux does after a writeback error:
	// the dirty pages are dropped, so the unsynced bytes read back as
	// zeros. (Independently of it, a descriptor whose Sync failed
	// reports success for later Syncs without making anything durable:
	// the error was consumed, the "fsyncgate" behaviour.)
	DropDirty bool
}

// inode is a file's content: what the page cache holds and what would
// survive a power cut.
type inode struct {
	data    []byte
	durable []byte
}

// FaultFS is an in-memory spool.FS that keeps, per file, the volatile
// (page cache) content and the durable content, and per directory the
// volatile and durable entries:
//
//   - a write changes the volatile content;
//   - File.Sync copies the file's volatile content to durable;
//   - SyncDir makes the directory's current entries durable;
//   - Crash models SIGKILL: nothing is lost, open files are closed;
//   - PowerCut keeps only durable content and entries.
//
// Directories themselves are always durable. It is safe for concurrent use.
type FaultFS struct {
	mu      sync.Mutex
	dirs    map[string]bool
	names   map[string]*inode
	durable map[string]*inode
	faults  []*faultState
	journal []string
	gen     int
	last    struct {
		name   string
		ino    *inode
		off, n int64
	}
}

type faultState struct {
	Fault
	seen, failed int
}

// NewFaultFS returns an empty FaultFS.
func NewFaultFS() *FaultFS {
	return &FaultFS{dirs: map[string]bool{"/": true, ".": true}, names: map[string]*inode{}, durable: map[string]*inode{}}
}

var _ spool.FS = (*FaultFS)(nil)

func clean(name string) string { return filepath.ToSlash(filepath.Clean(name)) }

// Inject adds a fault.
func (f *FaultFS) Inject(fl Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &faultState{Fault: fl})
}

// ClearFaults removes all faults.
func (f *FaultFS) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// fault returns the error for this call, if a fault matches.
func (f *FaultFS) fault(op Op, name string) (*faultState, error) {
	base := path.Base(name)
	for _, st := range f.faults {
		if st.Op != op {
			continue
		}
		if st.Match != "" {
			if ok, _ := path.Match(st.Match, base); !ok {
				continue
			}
		}
		times := st.Times
		if times == 0 {
			times = 1
		}
		st.seen++
		if st.seen <= st.Skip || times > 0 && st.failed >= times {
			continue
		}
		st.failed++
		return st, &fs.PathError{Op: string(op), Path: name, Err: st.Err}
	}
	return nil, nil
}

func (f *FaultFS) log(op Op, args ...string) {
	f.journal = append(f.journal, strings.Join(append([]string{string(op)}, args...), " "))
}

// Journal returns the operations that succeeded, oldest first, as
// "op basename [args]": e.g. "rename cursor.tmp cursor", "remove seg-….log".
func (f *FaultFS) Journal() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.journal)
}

// Crash models the process being killed: open files are invalidated,
// every write already made stays (in the page cache), durable or not.
func (f *FaultFS) Crash() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
}

// PowerCut models losing power: only synced content and entries of
// synced directories survive. Open files are invalidated.
func (f *FaultFS) PowerCut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	f.names = map[string]*inode{}
	for name, ino := range f.durable {
		ino.data = slices.Clone(ino.durable)
		f.names[name] = ino
	}
}

// TearLastWrite makes the file of the last write durable up to keep
// bytes into that write (with everything written before it), and its
// directory entry durable, as if writeback had reached that point when
// the power failed. What was already durable stays durable: a synced
// write cannot be torn. Call PowerCut next.
func (f *FaultFS) TearLastWrite(keep int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ino := f.last.ino
	if ino == nil {
		return
	}
	end := min(f.last.off+int64(max(keep, 0)), int64(len(ino.data)))
	end = max(end, min(int64(len(ino.durable)), int64(len(ino.data))))
	ino.durable = slices.Clone(ino.data[:end])
	if f.names[f.last.name] == ino {
		f.durable[f.last.name] = ino
	}
}

// LastWrite returns the base name, offset and length of the last write.
func (f *FaultFS) LastWrite() (name string, off, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return path.Base(f.last.name), f.last.off, f.last.n
}

// CorruptByte flips the bits of one byte of a file, in both its volatile
// and durable content (media corruption). It reports whether off was
// inside either.
func (f *FaultFS) CorruptByte(name string, off int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	ino := f.names[clean(name)]
	if ino == nil {
		return false
	}
	hit := false
	if off < int64(len(ino.data)) {
		ino.data[off] ^= 0xFF
		hit = true
	}
	if off < int64(len(ino.durable)) {
		ino.durable[off] ^= 0xFF
		hit = true
	}
	return hit
}

// ReadFile returns a copy of a file's volatile content.
func (f *FaultFS) ReadFile(name string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ino := f.names[clean(name)]
	if ino == nil {
		return nil, false
	}
	return slices.Clone(ino.data), true
}

// WriteFile creates or replaces a file, durably (for planting garbage).
func (f *FaultFS) WriteFile(name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = clean(name)
	ino := &inode{data: slices.Clone(data), durable: slices.Clone(data)}
	f.names[name], f.durable[name] = ino, ino
}

// Files returns the names (base names) in dir, sorted.
func (f *FaultFS) Files(dir string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list(clean(dir))
}

func (f *FaultFS) list(dir string) []string {
	var out []string
	for name := range f.names {
		if path.Dir(name) == dir {
			out = append(out, path.Base(name))
		}
	}
	sort.Strings(out)
	return out
}

// SizeOf returns the summed volatile size of the files in dir whose base
// name matches pattern.
func (f *FaultFS) SizeOf(dir, pattern string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, base := range f.list(clean(dir)) {
		if ok, _ := path.Match(pattern, base); ok {
			n += int64(len(f.names[path.Join(clean(dir), base)].data))
		}
	}
	return n
}

func (f *FaultFS) OpenFile(name string, flag int, perm fs.FileMode) (spool.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = clean(name)
	if _, err := f.fault(OpOpen, name); err != nil {
		return nil, err
	}
	if !f.dirs[path.Dir(name)] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	ino := f.names[name]
	switch {
	case ino == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case ino != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case ino == nil:
		ino = &inode{}
		f.names[name] = ino
		f.log(OpOpen, path.Base(name), "create")
	}
	if flag&os.O_TRUNC != 0 && flag&(os.O_WRONLY|os.O_RDWR) != 0 {
		ino.data = ino.data[:0]
	}
	return &file{fs: f, ino: ino, name: name, gen: f.gen, flag: flag}, nil
}

func (f *FaultFS) Rename(oldpath, newpath string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	oldpath, newpath = clean(oldpath), clean(newpath)
	if _, err := f.fault(OpRename, oldpath); err != nil {
		return err
	}
	ino := f.names[oldpath]
	if ino == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrNotExist}
	}
	delete(f.names, oldpath)
	f.names[newpath] = ino
	f.log(OpRename, path.Base(oldpath), path.Base(newpath))
	return nil
}

func (f *FaultFS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = clean(name)
	if _, err := f.fault(OpRemove, name); err != nil {
		return err
	}
	if f.names[name] == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(f.names, name)
	f.log(OpRemove, path.Base(name))
	return nil
}

func (f *FaultFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = clean(name)
	if !f.dirs[name] {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	var out []fs.DirEntry
	for _, base := range f.list(name) {
		out = append(out, dirEntry{info: fileInfo{name: base, size: int64(len(f.names[path.Join(name, base)].data))}})
	}
	for d := range f.dirs {
		if d != name && path.Dir(d) == name {
			out = append(out, dirEntry{info: fileInfo{name: path.Base(d), dir: true}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

func (f *FaultFS) MkdirAll(p string, perm fs.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p = clean(p); !f.dirs[p]; p = path.Dir(p) {
		if f.names[p] != nil {
			return &fs.PathError{Op: "mkdir", Path: p, Err: fs.ErrExist}
		}
		f.dirs[p] = true
	}
	return nil
}

func (f *FaultFS) Stat(name string) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = clean(name)
	if f.dirs[name] {
		return fileInfo{name: path.Base(name), dir: true}, nil
	}
	ino := f.names[name]
	if ino == nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return fileInfo{name: path.Base(name), size: int64(len(ino.data))}, nil
}

func (f *FaultFS) SyncDir(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = clean(name)
	if _, err := f.fault(OpSyncDir, name); err != nil {
		return err
	}
	for p := range f.durable {
		if path.Dir(p) == name && f.names[p] == nil {
			delete(f.durable, p)
		}
	}
	for p, ino := range f.names {
		if path.Dir(p) == name {
			f.durable[p] = ino
		}
	}
	f.log(OpSyncDir, path.Base(name))
	return nil
}
