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
	"syscall"
	"testing"
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

// mountExt4 makes an ext4 image of sizeMiB and loop-mounts it.
func mountExt4(t *testing.T, sizeMiB int) string {
	t.Helper()
	needRoot(t, "mount", "umount", "mkfs.ext4")
	base := t.TempDir()
	img := filepath.Join(base, "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, int64(sizeMiB)<<20); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mkfs.ext4", "-q", "-F", "-m", "0", img)
	dir := filepath.Join(base, "ext4")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mount", "-o", "loop", img, dir)
	t.Cleanup(func() { umount(t, dir) })
	return dir
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
