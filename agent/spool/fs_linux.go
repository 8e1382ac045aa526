package spool

import (
	"os"
	"syscall"
)

// datasync is fdatasync(2): it flushes the data and the metadata needed to
// read it back (the size), but not timestamps, saving a journal write per
// sync on ext4. The standard library's syscall.Fdatasync is used so the
// module does not need golang.org/x/sys, which is not in go.sum.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return f.Sync()
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// flock takes an exclusive, non-blocking advisory lock on f. It is held
// until f is closed (or the process ends, however it ends).
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			if err == syscall.EWOULDBLOCK {
				return errLockHeld
			}
			return err
		}
	}
}

// available returns the bytes an unprivileged process may still write
// on the filesystem holding dir.
func available(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// sameInode reports whether two FileInfos of the OS filesystem name the
// same inode; known is false for other filesystems.
func sameInode(a, b os.FileInfo) (same, known bool) {
	x, ok1 := a.Sys().(*syscall.Stat_t)
	y, ok2 := b.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return false, false
	}
	return x.Dev == y.Dev && x.Ino == y.Ino, true
}

// unlinked reports whether an open file of the OS filesystem has been
// deleted (no name links to it any more).
func unlinked(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 0
}
