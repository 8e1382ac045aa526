package main

// Real filesystems for the fault tests: a tmpfs or a loop-mounted ext4 of
// a chosen size, remounted read-only, filled up, deleted under the agent.
// Mounting needs root: CI runs as root, so there a missing privilege or
// tool fails the test; elsewhere the test is skipped with the reason.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// needRoot skips (or, in CI, fails) a test that mounts filesystems.
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "mounting a tmpfs or a loop device needs root"
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil && why == "" {
			why = tool + " is not installed (Debian package e2fsprogs / mount)"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: CI runs as root with the tools installed (.ci/run)", why)
	}
	t.Skip(why)
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// mountTmpfs mounts a tmpfs of size (e.g. "2m") on a new directory and
// unmounts it at the end of the test.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	needRoot(t, "mount", "umount")
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir)
	t.Cleanup(func() { umount(t, dir) })
	return dir
}

// ext4FS is a loop-mounted ext4 image, mounted errors=remount-ro as
// Raspberry Pi OS mounts its root: a failing card turns it read-only.
type ext4FS struct {
	t        *testing.T
	dir, img string
}

// mountExt4 makes an ext4 image of sizeMiB and loop-mounts it.
func mountExt4(t *testing.T, sizeMiB int) *ext4FS {
	t.Helper()
	needRoot(t, "mount", "umount", "mkfs.ext4", "e2fsck", "findmnt")
	base := t.TempDir()
	fs := &ext4FS{t: t, img: filepath.Join(base, "disk.img"), dir: filepath.Join(base, "ext4")}
	if err := os.WriteFile(fs.img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(fs.img, int64(sizeMiB)<<20); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mkfs.ext4", "-q", "-F", "-m", "0", fs.img)
	if err := os.Mkdir(fs.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fs.mount()
	t.Cleanup(func() { umount(t, fs.dir) })
	return fs
}

func (fs *ext4FS) mount() {
	mustRun(fs.t, "mount", "-o", "loop,errors=remount-ro", fs.img, fs.dir)
}

// fail makes the kernel find an error in the filesystem, as a failing SD
// card does: with errors=remount-ro every write fails with EROFS from then
// on, files held open for writing included (a plain `mount -o
// remount,ro` refuses while they are).
func (fs *ext4FS) fail() {
	fs.t.Helper()
	out, err := exec.Command("findmnt", "-no", "SOURCE", fs.dir).Output()
	if err != nil {
		fs.t.Fatalf("findmnt %s: %v", fs.dir, err)
	}
	knob := filepath.Join("/sys/fs/ext4", filepath.Base(strings.TrimSpace(string(out))), "trigger_fs_error")
	if err := os.WriteFile(knob, []byte("1"), 0o200); err != nil {
		fs.t.Fatalf("%s: %v", knob, err)
	}
}

// repair unmounts the filesystem (nothing may use it), checks it with
// e2fsck -fy as the boot would, and mounts it again read-write.
func (fs *ext4FS) repair() {
	fs.t.Helper()
	mustRun(fs.t, "umount", fs.dir)
	out, err := exec.Command("e2fsck", "-fy", fs.img).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 2) {
		fs.t.Fatalf("e2fsck %s: %v\n%s", fs.img, err, out)
	}
	fs.mount()
}

func umount(t *testing.T, dir string) {
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		// Busy (a child still running): detach it lazily.
		if out2, err2 := exec.Command("umount", "-l", dir).CombinedOutput(); err2 != nil {
			t.Errorf("umount %s: %v %s; umount -l: %v %s", dir, err, out, err2, out2)
		}
	}
}

// remount changes a mount's options, e.g. "ro" or "rw".
func remount(t *testing.T, dir, opts string) {
	t.Helper()
	mustRun(t, "mount", "-o", "remount,"+opts, dir)
}

// fill writes a file in dir until the filesystem is full and returns its
// path; removing it gives the space back.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	// The last blocks, one at a time.
	small := make([]byte, 512)
	for {
		if _, err := f.Write(small); err != nil {
			break
		}
	}
	f.Sync()
	return path
}

// keepFull is another writer on a full filesystem: it appends to path
// whatever space comes free, every few milliseconds, until stop is called.
func keepFull(t *testing.T, path string) (stop func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer f.Close()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		buf := make([]byte, 4096)
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				for {
					if _, err := f.Write(buf); err != nil {
						break
					}
				}
			}
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// freeBytes is what statfs says may still be written in dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

func sizeOf(t *testing.T, dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "?"
	}
	return fmt.Sprintf("%d KiB of %d KiB free", int64(st.Bavail)*int64(st.Bsize)>>10, int64(st.Blocks)*int64(st.Bsize)>>10)
}
