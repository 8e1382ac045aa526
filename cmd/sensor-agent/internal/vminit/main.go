//go:build linux

// Command vminit is PID 1 of the virtual machine booted by the power-cut
// test (cmd/sensor-agent/powercut_test.go). It is not part of the agent:
// the test builds it statically (CGO_ENABLED=0), puts it at /init in an
// initramfs next to the agent, its config and a few kernel modules, and
// boots the Debian kernel with it under qemu.
//
// It mounts /proc, /sys and /dev, loads the modules in /modules in the
// order of their file names (the test numbers them in dependency order,
// so no modprobe and no modules.dep are needed in the VM), mounts the
// virtio disk /dev/vda as ext4 at /data, and runs
// /sensor-agent run -config /config.yaml with its output on the console.
// It reaps every child and never returns: PID 1 exiting panics the
// kernel. If the agent exits, vminit prints how and powers the VM off, so
// the test sees qemu exit instead of waiting for its deadline.
//
// Every line it prints starts with "vminit: " so the test can tell them
// from the agent's log.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
	"unsafe"
)

const (
	modulesDir = "/modules"
	disk       = "/dev/vda"
	dataDir    = "/data"
	stateDir   = "/data/state"
	agentPath  = "/sensor-agent"
	configPath = "/config.yaml"
)

func main() {
	if err := setup(); err != nil {
		fatal(err)
	}
	pid, err := startAgent()
	if err != nil {
		fatal(err)
	}
	reap(pid)
}

func setup() error {
	mounts := []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		// devtmpfs gives /dev/vda as soon as virtio_blk has probed the
		// disk, without udev.
		{"devtmpfs", "/dev", "devtmpfs"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(m.src, m.dst, m.fstype, syscall.MS_NOSUID|syscall.MS_NOEXEC, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	if err := loadModules(); err != nil {
		return err
	}
	if err := waitFor(disk, 10*time.Second); err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	// Default ext4 options (data=ordered, barriers on): the agent's
	// fdatasync becomes a flush of the virtual disk's write cache, as on
	// a Pi's SD card.
	if err := syscall.Mount(disk, dataDir, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", disk, dataDir, err)
	}
	// The state directory is the agent's to create, but the first boot
	// finds an empty file system; creating it here keeps a missing
	// directory from being mistaken for a recovery problem.
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return err
	}
	say("mounted %s on %s", disk, dataDir)
	return nil
}

// loadModules loads every file in modulesDir, in name order.
func loadModules() error {
	entries, err := os.ReadDir(modulesDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a kernel with everything built in
	}
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	for _, name := range names {
		image, err := os.ReadFile(filepath.Join(modulesDir, name))
		if err != nil {
			return err
		}
		if err := initModule(image); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("load module %s: %w", name, err)
		}
	}
	say("loaded %d modules", len(names))
	return nil
}

// initModule is init_module(2). finit_module would avoid the copy, but the
// syscall package has no number for it on amd64; init_module has one on
// every Linux architecture.
func initModule(image []byte) error {
	params := []byte{0} // no module parameters: an empty C string
	_, _, errno := syscall.Syscall(syscall.SYS_INIT_MODULE,
		uintptr(unsafe.Pointer(&image[0])), uintptr(len(image)), uintptr(unsafe.Pointer(&params[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// waitFor polls for path: devtmpfs creates the disk's node when the driver
// has probed it, which normally happened before init_module returned, but
// the kernel does not promise that. There is nothing to be notified by
// without udev, so PID 1 polls briefly.
func waitFor(path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		_, err := os.Stat(path)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s: %w", path, limit, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startAgent starts the agent with the console (inherited from the kernel
// as fds 0-2) as its standard streams.
func startAgent() (int, error) {
	say("starting %s", agentPath)
	pid, err := syscall.ForkExec(agentPath, []string{agentPath, "run", "-config", configPath}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{"PATH=/", "HOME=/"},
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", agentPath, err)
	}
	return pid, nil
}

// reap waits for every child, as PID 1 must (orphans are reparented to
// it), until the agent exits; then it powers off.
func reap(agent int) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			fatal(fmt.Errorf("wait: %w", err))
		}
		if pid != agent {
			continue
		}
		switch {
		case ws.Exited():
			say("agent exited with status %d", ws.ExitStatus())
		case ws.Signaled():
			say("agent killed by signal %v", ws.Signal())
		default:
			say("agent ended: wait status %#x", uint32(ws))
		}
		powerOff()
	}
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vminit: "+format+"\n", args...)
}

func fatal(err error) {
	say("FATAL: %v", err)
	powerOff()
}

// powerOff ends the VM. There is deliberately no sync(2) first: this VM
// exists to lose whatever the agent did not sync itself. If the power-off
// fails, PID 1 must still not return (the kernel would panic), so it
// sleeps until qemu is killed by the test.
func powerOff() {
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		say("power off: %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}
