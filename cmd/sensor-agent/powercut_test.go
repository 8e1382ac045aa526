package main

// The power-cut loop (issue 3, item 4): the real agent, built statically,
// runs as the only program of a Linux VM whose disk is an ext4 image; qemu
// is SIGKILLed at a random moment, which is a power cut for the guest; the
// image is checked with e2fsck and the spool is read out of it with debugfs
// and `sensor-agent spool export`. Every reading the agent logged as synced
// must be there, after every cut, for every boot so far; and the agent
// must start again on the same image each time.
//
// It boots the host's Debian kernel (linux-image-amd64) under
// qemu-system-x86_64 with software emulation (TCG), so it runs anywhere
// the packages are installed, without KVM. It is slow (seconds per boot),
// so it runs only when asked:
//
//	SENSOR_AGENT_POWERCUT=20 go test -run PowerCut -v ./cmd/sensor-agent
//
// or with CI=true (3 iterations), where missing tools fail the test
// instead of skipping it. SENSOR_AGENT_POWERCUT_SEED replays the random
// kill delays of a logged run (the guest's own timing under TCG still
// varies, so a replay is close, not exact).

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

const (
	// powercutBootTimeout bounds one boot: from starting qemu to the
	// first "spool synced" line. Under TCG the kernel and the agent start
	// in a few seconds; a loaded CI machine may need many more.
	powercutBootTimeout = 2 * time.Minute
	// The kill comes at a random moment in [first sync + min, first sync
	// + max): late enough that several syncs happened, early enough that
	// an iteration stays short.
	powercutKillMin = 1 * time.Second
	powercutKillMax = 6 * time.Second
	// powercutIterationBudget is the most an iteration can take before a
	// timeout fails it: booting, running, checking.
	powercutIterationBudget = powercutBootTimeout + powercutKillMax + time.Minute
	// powercutImageSize holds a few hours of this test's readings.
	powercutImageSize = "64M"
)

// The agent's log lines the test acts on. The agent logs with slog's text
// handler, e.g.
//
//	time=... level=DEBUG msg="spool synced" through=1234 ...
var (
	powercutStartedRE = regexp.MustCompile(`msg="sensor-agent started"`)
	powercutSyncedRE  = regexp.MustCompile(`msg="spool synced".*\bthrough=(\d+)`)
)

// powercutTools are the host programs the test runs, by the Debian
// package that installs them.
var powercutTools = []struct{ cmd, pkg string }{
	{"qemu-system-x86_64", "qemu-system-x86"},
	{"mke2fs", "e2fsprogs"},
	{"e2fsck", "e2fsprogs"},
	{"debugfs", "e2fsprogs"},
}

func TestPowerCut(t *testing.T) {
	iterations := powercutIterations(t)
	tools, kernel := powercutPrereqs(t)

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SENSOR_AGENT_POWERCUT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SENSOR_AGENT_POWERCUT_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("power-cut loop: %d iterations, kernel %s, seed %d (replay with SENSOR_AGENT_POWERCUT_SEED=%d)",
		iterations, kernel.image, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	// Not t.TempDir: after a failure the image, the console logs and the
	// dumps are what there is to look at.
	dir, err := os.MkdirTemp("", "sensor-agent-powercut-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept %s: disk.img, console-NN.log per boot, dump-NN/ (the state directory after each cut)", dir)
			return
		}
		os.RemoveAll(dir)
	})
	started := time.Now()
	agentBin := powercutBuild(t, dir, "sensor-agent", ".")
	initrd := powercutInitramfs(t, dir, kernel, agentBin, powercutBuild(t, dir, "vminit", "./internal/vminit"))
	img := filepath.Join(dir, "disk.img")
	powercutRun(t, 2*time.Minute, tools["mke2fs"], "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "powercut", img, powercutImageSize)
	t.Logf("built the binaries, the initramfs and the disk image in %s", time.Since(started).Round(time.Millisecond))

	vm := &powercutVM{t: t, tools: tools, kernel: kernel, initrd: initrd, img: img, agent: agentBin, dir: dir}
	for i := 1; i <= iterations; i++ {
		// go test's -timeout would panic the whole binary in the middle
		// of a boot; stopping between iterations says what was done.
		if d, ok := t.Deadline(); ok && time.Until(d) < powercutIterationBudget {
			t.Fatalf("only %s left before go test's -timeout, an iteration may take %s: %d of %d done; run with a longer -timeout",
				time.Until(d).Round(time.Second), powercutIterationBudget, i-1, iterations)
		}
		delay := powercutKillMin + time.Duration(rng.Int64N(int64(powercutKillMax-powercutKillMin)))
		if !vm.iteration(i, delay) {
			t.Fatalf("iteration %d of %d failed (seed %d)", i, iterations, seed)
		}
	}
	t.Logf("%d power cuts in %s", iterations, time.Since(started).Round(time.Millisecond))
}

// powercutIterations returns how many power cuts to make, or skips.
func powercutIterations(t *testing.T) int {
	if s := os.Getenv("SENSOR_AGENT_POWERCUT"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("SENSOR_AGENT_POWERCUT=%q: want a number of iterations, at least 1", s)
		}
		return n
	}
	if os.Getenv("CI") == "true" {
		return 3
	}
	t.Skip("the power-cut loop boots a VM per iteration (about 10 s each): run it with SENSOR_AGENT_POWERCUT=N (iterations), e.g. make powercut")
	return 0
}

// powercutKernel is the Debian kernel the VM boots, and its modules.
type powercutKernel struct {
	version string // e.g. 6.1.0-56-amd64
	image   string // /boot/vmlinuz-<version>
	modules string // /lib/modules/<version>
}

// powercutPrereqs finds the tools and the kernel. What is missing fails
// the test in CI, which must install it, and skips it elsewhere.
func powercutPrereqs(t *testing.T) (map[string]string, powercutKernel) {
	missing := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI must install it)", msg)
		}
		t.Skip(msg)
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		// The VM runs the host's /boot kernel and a binary built for
		// the host; both must be x86-64 Linux.
		t.Skipf("the power-cut loop needs an amd64 Linux host, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	tools := map[string]string{}
	var pkgs []string
	for _, tool := range powercutTools {
		path, err := powercutLookPath(tool.cmd)
		if err != nil {
			if !slices.Contains(pkgs, tool.pkg) {
				pkgs = append(pkgs, tool.pkg)
			}
			continue
		}
		tools[tool.cmd] = path
	}
	kernel, kerr := powercutFindKernel()
	if kerr != nil {
		pkgs = append(pkgs, "linux-image-amd64")
	}
	if len(pkgs) > 0 {
		detail := ""
		if kerr != nil {
			detail = " (" + kerr.Error() + ")"
		}
		missing("the power-cut loop needs Debian packages %s%s: apt-get install %s",
			strings.Join(pkgs, ", "), detail, strings.Join(pkgs, " "))
	}
	return tools, kernel
}

// powercutLookPath is exec.LookPath that also looks in the sbin
// directories, which a non-root PATH often lacks (e2fsprogs is there).
func powercutLookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// powercutFindKernel returns the newest /boot/vmlinuz-* that has its
// modules installed and is readable.
func powercutFindKernel() (powercutKernel, error) {
	images, _ := filepath.Glob("/boot/vmlinuz-*")
	var errs []error
	for _, image := range slices.Backward(images) {
		version := strings.TrimPrefix(filepath.Base(image), "vmlinuz-")
		k := powercutKernel{version: version, image: image, modules: filepath.Join("/lib/modules", version)}
		if _, err := os.Stat(filepath.Join(k.modules, "modules.dep")); err != nil {
			errs = append(errs, err)
			continue
		}
		f, err := os.Open(image) // Ubuntu, for one, makes it root-only
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.Close()
		return k, nil
	}
	if len(images) == 0 {
		return powercutKernel{}, errors.New("no /boot/vmlinuz-*")
	}
	return powercutKernel{}, errors.Join(errs...)
}

// powercutBuild builds the Go package pkg (relative to this directory) as
// a static linux/amd64 binary: the VM has no libc.
func powercutBuild(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	goTool, err := findGo()
	if err != nil {
		t.Fatalf("cannot build %s: %v", name, err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// powercutConfig is the agent's config in the VM. The endpoint is the
// discard port on the VM's own loopback, which is not even up: every
// publish fails, so nothing is ever acknowledged and every reading taken
// stays pending in the spool, where the test can count it.
const powercutConfig = `device_id: vm
state_dir: /data/state
log_level: debug
endpoint:
  host: 127.0.0.1
  port: 9
  cert_file: /certs/device.pem.crt
  key_file: /certs/private.pem.key
spool:
  sync_interval: 200ms
sensors:
  - name: sim
    driver: sim
    interval: 20ms
`

// powercutModules are the modules the VM needs beyond what Debian's kernel
// has built in: the virtio PCI transport and disk, and ext4 with the
// crc32c it checksums metadata with (a soft dependency, which the kernel
// would otherwise ask a modprobe the VM does not have for).
var powercutModules = []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4"}

// powercutInitramfs writes the VM's initramfs: vminit as /init, the agent,
// its config and throwaway certificates, and the modules, numbered in the
// order vminit must load them.
func powercutInitramfs(t *testing.T, dir string, k powercutKernel, agentBin, vminit string) string {
	t.Helper()
	pki, err := iotemu.NewPKI(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	mods, err := powercutModuleFiles(k, powercutModules)
	if err != nil {
		t.Fatalf("kernel modules for the VM: %v", err)
	}
	path := filepath.Join(dir, "initramfs.cpio")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := newCpioWriter(f)
	for _, d := range []string{"dev", "proc", "sys", "data", "certs", "modules"} {
		w.dir(d)
	}
	// The kernel opens /dev/console for init's standard streams before
	// devtmpfs is mounted; Debian's kernel has one in its built-in
	// initramfs, a custom one may not.
	w.charDev("dev/console", 0o600, 5, 1)
	w.fileFrom(t, "init", vminit, 0o755)
	w.fileFrom(t, "sensor-agent", agentBin, 0o755)
	w.file("config.yaml", []byte(powercutConfig), 0o644)
	w.fileFrom(t, "certs/device.pem.crt", pki.Path(iotemu.DeviceCertFile), 0o644)
	w.fileFrom(t, "certs/private.pem.key", pki.Path(iotemu.DeviceKeyFile), 0o600)
	for i, m := range mods {
		data, err := powercutReadModule(m)
		if err != nil {
			t.Fatalf("kernel module %s: %v", m, err)
		}
		w.file(fmt.Sprintf("modules/%02d-%s.ko", i, powercutModuleName(m)), data, 0o644)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// powercutModuleFiles returns the files of the wanted modules and of
// everything they depend on, dependencies first, from the kernel's
// modules.dep. Modules built into the kernel (modules.builtin) are left
// out.
func powercutModuleFiles(k powercutKernel, want []string) ([]string, error) {
	dep, err := os.ReadFile(filepath.Join(k.modules, "modules.dep"))
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{} // module name -> [its file, its dependencies' files...]
	for line := range strings.Lines(string(dep)) {
		file, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		deps[powercutModuleName(file)] = append([]string{file}, strings.Fields(rest)...)
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(k.modules, "modules.builtin")); err == nil {
		for line := range strings.Lines(string(b)) {
			builtin[powercutModuleName(strings.TrimSpace(line))] = true
		}
	}
	var order []string
	seen := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if seen[name] || builtin[name] {
			return nil
		}
		seen[name] = true
		files, ok := deps[name]
		if !ok {
			return fmt.Errorf("%s is neither in modules.dep nor in modules.builtin of %s", name, k.modules)
		}
		// modules.dep lists the transitive dependencies, each after the
		// ones it needs to be loaded after (modprobe loads them last to
		// first); visiting each keeps that order whatever the listing.
		for _, d := range slices.Backward(files[1:]) {
			if err := visit(powercutModuleName(d)); err != nil {
				return err
			}
		}
		order = append(order, filepath.Join(k.modules, files[0]))
		return nil
	}
	for _, name := range want {
		if err := visit(name); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// powercutModuleName is a module's name from its path: base name without
// the .ko and compression suffixes, with - as _ as the kernel does.
func powercutModuleName(path string) string {
	name := filepath.Base(path)
	if i := strings.Index(name, ".ko"); i >= 0 {
		name = name[:i]
	}
	return strings.ReplaceAll(name, "-", "_")
}

// powercutReadModule returns a module file's contents uncompressed:
// vminit loads modules with init_module(2), which takes an ELF image.
// Debian 12's kernel ships plain .ko files; newer ones compress them.
func powercutReadModule(path string) ([]byte, error) {
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.gz"):
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(z)
	case strings.HasSuffix(path, ".ko.xz"), strings.HasSuffix(path, ".ko.zst"):
		tool, pkg := "xz", "xz-utils"
		if strings.HasSuffix(path, ".zst") {
			tool, pkg = "zstd", "zstd"
		}
		out, err := exec.Command(tool, "-dc", path).Output()
		if err != nil {
			return nil, fmt.Errorf("%s -dc (package %s): %w", tool, pkg, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown module file type %s", path)
}

// ---- one boot ----

// powercutVM is the disk image and everything needed to boot it, and what
// the earlier boots left on it.
type powercutVM struct {
	t      *testing.T
	tools  map[string]string
	kernel powercutKernel
	initrd string
	img    string
	agent  string // the static agent, which also runs on the host
	dir    string

	boots []powercutBoot
	// prev is the set of seqs the spool held after the previous power cut.
	prev map[uint64]bool
	// leaseEnd is the sequence counter's lease end on the image after the
	// previous power cut (0 before the first boot).
	leaseEnd uint64
}

// powercutBoot is what one boot showed.
type powercutBoot struct {
	n        int
	first    uint64 // the first seq this boot handed out
	through  uint64 // the highest seq the agent logged as synced
	syncs    int    // how many "spool synced" lines
	bootTime time.Duration
	ranFor   time.Duration // from the first sync to the kill
}

// iteration boots the VM, cuts its power, and checks the image. It reports
// whether everything held; failures have been reported with t.Errorf.
func (vm *powercutVM) iteration(n int, delay time.Duration) bool {
	t := vm.t
	start := time.Now()
	b, console, ok := vm.boot(n, delay)
	logTail := func() {
		t.Logf("boot %d: last lines of the console (all in %s):\n%s", n, console.path, console.tail(40))
	}
	if !ok {
		logTail()
		return false
	}
	ok = vm.check(&b)
	if !ok {
		logTail()
	}
	t.Logf("boot %d: agent started %s after qemu, %d syncs through seq %d, power cut %s after the first sync; iteration took %s",
		n, b.bootTime.Round(time.Millisecond), b.syncs, b.through, b.ranFor.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return ok
}

// boot runs qemu until the power cut and returns what the console showed.
func (vm *powercutVM) boot(n int, delay time.Duration) (powercutBoot, *powercutConsole, bool) {
	t := vm.t
	b := powercutBoot{n: n}
	console, err := newPowercutConsole(filepath.Join(vm.dir, fmt.Sprintf("console-%02d.log", n)))
	if err != nil {
		t.Fatal(err)
	}
	defer console.close()

	ctx, cancel := context.WithTimeout(context.Background(), powercutIterationBudget)
	defer cancel()
	// cache=writeback: the guest sees a disk with a volatile write cache,
	// so its kernel sends a flush for every fdatasync and journal commit,
	// as with an SD card; qemu completes a flush only after fdatasync on
	// the image file. A SIGKILL of qemu then behaves like a power cut for
	// the guest: what was only in the guest's page cache is gone, every
	// write qemu had completed is in the image file (the host keeps its
	// page cache, and anything the guest flushed was also fdatasynced).
	// That model is a little kind: writes the guest submitted but never
	// flushed also survive here, where a real card might lose them; but it
	// never keeps less than a real disk would, so a seq the agent logged
	// as synced and the test cannot find is a real loss. (With a SIGKILL,
	// no cache mode loses more: they differ only on a host crash.
	// cache=unsafe would turn the guest's flushes into no-ops, which hides
	// nothing here either, but writeback keeps the flush path realistic.)
	cmd := exec.CommandContext(ctx, vm.tools["qemu-system-x86_64"],
		"-accel", "tcg",
		"-m", "256M",
		"-nographic",
		"-no-reboot",
		"-nic", "none", // no network device: the agent's publishes fail, the spool keeps everything
		"-kernel", vm.kernel.image,
		"-initrd", vm.initrd,
		"-append", "console=ttyS0 panic=-1 quiet",
		"-drive", "file="+vm.img+",format=raw,if=virtio,cache=writeback",
	)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w // the console and qemu's own complaints, in order
	cmd.WaitDelay = 10 * time.Second
	qemuStart := time.Now()
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatalf("start qemu: %v", err)
	}
	w.Close() // qemu holds the only write end: EOF means qemu is gone
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- strings.TrimRight(sc.Text(), "\r")
		}
	}()

	bootTimer := time.NewTimer(powercutBootTimeout)
	defer bootTimer.Stop()
	var (
		kill      <-chan time.Time
		killed    bool
		started   bool
		firstSync time.Time
		failed    string
	)
	// abort ends the boot early; the first reason is the one reported.
	abort := func(reason string) {
		if failed == "" {
			failed = reason
		}
		_ = cmd.Process.Kill()
	}
loop:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break loop
			}
			console.add(line)
			switch {
			case powercutStartedRE.MatchString(line):
				if !started {
					started = true
					b.bootTime = time.Since(qemuStart)
				}
			case powercutSyncedRE.MatchString(line):
				// Every line read counts, also those read after the
				// kill: the agent printed it after its fdatasync
				// returned, which was after qemu's own fdatasync, and
				// before qemu died.
				through, err := strconv.ParseUint(powercutSyncedRE.FindStringSubmatch(line)[1], 10, 64)
				if err != nil {
					abort(fmt.Sprintf("bad spool synced line %q: %v", line, err))
					break
				}
				if through < b.through {
					t.Errorf("boot %d: synced through %d after through %d: the synced seq went back", n, through, b.through)
				}
				b.through = max(b.through, through)
				b.syncs++
				if !killed && kill == nil {
					firstSync = time.Now()
					bootTimer.Stop()
					kill = time.After(delay)
				}
			case powercutNoteworthy(line):
				t.Logf("boot %d: %s", n, line)
			}
		case <-kill:
			kill = nil
			killed = true
			b.ranFor = time.Since(firstSync)
			// SIGKILL: qemu gets no chance to write anything more.
			if err := cmd.Process.Kill(); err != nil {
				abort(fmt.Sprintf("kill qemu: %v", err))
			}
		case <-bootTimer.C:
			abort(fmt.Sprintf("no %q line within %s of starting qemu", `msg="spool synced"`, powercutBootTimeout))
		case <-ctx.Done():
			abort("qemu did not exit after being killed")
			break loop
		}
	}
	go func() {
		for range lines { // let the reader finish if the loop left early
		}
	}()
	err = cmd.Wait()
	switch {
	case failed != "":
	case !killed:
		failed = fmt.Sprintf("qemu exited before the power cut (%v)", err)
	case !started:
		failed = "the agent never logged \"sensor-agent started\""
	}
	if failed != "" {
		if !started {
			failed += "; the agent did not start"
		}
		t.Errorf("boot %d: %s", n, failed)
		return b, console, false
	}
	return b, console, true
}

// powercutNoteworthy reports whether a console line goes into the test's
// log as it comes: the agent's warnings and errors, except the failed
// publishes this setup causes on purpose. (Everything is in the console
// file, and the last lines are logged on failure.)
func powercutNoteworthy(line string) bool {
	if strings.Contains(line, `msg="publish failed`) {
		return false
	}
	return strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN")
}

// check runs e2fsck on the image, reads the spool out and checks it
// against what this and every earlier boot logged as synced.
func (vm *powercutVM) check(b *powercutBoot) bool {
	t := vm.t
	ok := true
	fail := func(format string, args ...any) {
		t.Errorf("boot %d: "+format, append([]any{b.n}, args...)...)
		ok = false
	}

	// A power cut leaves a journal to replay and maybe orphan inodes to
	// release; e2fsck -y does both, as the boot after a real cut would.
	// Exit codes 1 and 2 mean it changed something; 4 and up that it
	// could not fix everything.
	code, out := powercutTool(t, vm.tools["e2fsck"], "-fy", vm.img)
	if code >= 4 {
		fail("e2fsck -fy exited %d: the file system is damaged beyond repair:\n%s", code, out)
		return false
	}
	if odd := powercutFsckUnexpected(out); len(odd) > 0 {
		// The disk lost writes the guest had flushed (then the test's
		// power-cut model is broken) or the kernel wrote a damaged
		// file system: either way the spool was not what was tested.
		fail("e2fsck -fy repaired more than a power cut leaves on a journalled file system (%s):\n%s", strings.Join(odd, "; "), out)
	}
	if code, out := powercutTool(t, vm.tools["e2fsck"], "-fn", vm.img); code != 0 {
		fail("the file system is not consistent after e2fsck -fy: e2fsck -fn exited %d:\n%s", code, out)
		return false
	}

	dump := filepath.Join(vm.dir, fmt.Sprintf("dump-%02d", b.n))
	if err := os.Mkdir(dump, 0o755); err != nil {
		t.Fatal(err)
	}
	// debugfs exits 0 even when a request fails; the dump is checked below.
	_, out = powercutTool(t, vm.tools["debugfs"], "-R", "rdump /state "+dump, vm.img)
	state := filepath.Join(dump, "state")
	spoolDir := filepath.Join(state, "spool")
	if st, err := os.Stat(spoolDir); err != nil || !st.IsDir() {
		fail("no spool directory in the image (debugfs rdump /state): %v\n%s", err, out)
		return false
	}

	// What the spool holds now, and what the sequence counter says.
	seqs, dups, err := powercutExport(vm.agent, spoolDir)
	if err != nil {
		fail("%v", err)
		return false
	}
	if len(dups) > 0 {
		fail("%d seqs are in the spool more than once, e.g. %v: a seq was handed out twice", len(dups), dups[:min(len(dups), 10)])
	}
	leaseEnd, err := powercutLeaseEnd(filepath.Join(state, "seq"))
	if err != nil {
		fail("%v", err)
		return false
	}

	// The first seq of this boot: the sequencer resumes at the lease end
	// it finds after a reboot, or after the spool's last record if that
	// is higher (see reading.OpenSequencer). The first boot starts at 1.
	b.first = vm.leaseEnd
	var prevMax uint64
	for s := range vm.prev {
		prevMax = max(prevMax, s)
	}
	b.first = max(b.first, prevMax+1)
	if b.through < b.first {
		fail("the agent logged synced through %d, below this boot's first seq %d", b.through, b.first)
	}
	// Seqs are never reused: nothing new may be below this boot's first.
	var newSeqs, below, beyond int
	for s := range seqs {
		if !vm.prev[s] {
			newSeqs++
			if s < b.first {
				below++
			}
			if s > b.through {
				beyond++
			}
		}
	}
	if below > 0 {
		fail("%d new seqs in the spool are below this boot's first seq %d (after lease end %d and spool max %d): seqs repeat", below, b.first, vm.leaseEnd, prevMax)
	}
	// What survived the previous cut was recovered (the agent syncs it at
	// start) and is never acknowledged here, so it must all still be there.
	var gone []uint64
	for s := range vm.prev {
		if !seqs[s] {
			gone = append(gone, s)
		}
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		fail("%d seqs that were in the spool after the previous power cut are gone: %s", len(gone), powercutRanges(gone))
	}

	// The guarantee: every reading logged as synced, in this boot and in
	// every earlier one, is in the spool.
	vm.boots = append(vm.boots, *b)
	for _, ob := range vm.boots {
		var missing []uint64
		for s := ob.first; s <= ob.through; s++ {
			if !seqs[s] {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			fail("%d of the seqs boot %d logged as synced (%d..%d) are not in the spool: %s",
				len(missing), ob.n, ob.first, ob.through, powercutRanges(missing))
		}
	}
	t.Logf("boot %d: seqs %d..%d logged as synced; %d new seqs in the spool (%d beyond the last logged sync), %d in all",
		b.n, b.first, b.through, newSeqs, beyond, len(seqs))

	vm.prev = seqs
	vm.leaseEnd = leaseEnd
	return ok
}

// powercutFsckExpected matches what e2fsck -fy normally says after a
// power cut on ext4: it replays the journal, releases orphan inodes (files
// deleted or truncated while open), and corrects the free block and inode
// counts, which ext4 does not keep up to date in the superblock.
var powercutFsckExpected = regexp.MustCompile(`(?i)^(e2fsck \d|Pass \d|.*: recovering journal|` +
	`.*orphan|Free (blocks|inodes) count wrong|Fix\? yes|.*FILE SYSTEM WAS MODIFIED|.*: \d+/\d+ files )`)

// powercutFsckUnexpected returns what else e2fsck said.
func powercutFsckUnexpected(out string) []string {
	var odd []string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line != "" && !powercutFsckExpected.MatchString(line) {
			odd = append(odd, line)
		}
	}
	return odd
}

// powercutExport runs `sensor-agent spool export` on a spool directory and
// returns the set of seqs it printed and those printed more than once.
func powercutExport(agent, dir string) (map[uint64]bool, []uint64, error) {
	cmd := exec.Command(agent, "spool", "export", "-dir", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("sensor-agent spool export -dir %s: %v\n%s", dir, err, stderr.Bytes())
	}
	seqs := map[uint64]bool{}
	var dups []uint64
	for line := range bytes.Lines(out) {
		var r struct {
			Seq *uint64 `json:"seq"`
		}
		if err := json.Unmarshal(line, &r); err != nil || r.Seq == nil {
			return nil, nil, fmt.Errorf("spool export printed %q: want a JSON object with a seq (%v)", bytes.TrimSpace(line), err)
		}
		if seqs[*r.Seq] {
			dups = append(dups, *r.Seq)
		}
		seqs[*r.Seq] = true
	}
	return seqs, dups, nil
}

// powercutLeaseEnd reads the end of the sequence counter's lease from the
// agent's seq file (agent/reading/seq.go: "SEQ4", the lease end as a
// little-endian uint64, the boot id, the spool incarnation, the mount id,
// a CRC32C).
// It returns 0 if the file does not exist. The test reads it itself
// because the reading package has no reader for it; a new format makes
// this fail with a message saying so rather than check the wrong thing.
func powercutLeaseEnd(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) < 12 || string(b[:4]) != "SEQ4" && string(b[:4]) != "SEQ3" {
		return 0, fmt.Errorf("seq file %s: not the SEQ3/SEQ4 format this test knows (%d bytes, starts %q): update powercutLeaseEnd", path, len(b), b[:min(len(b), 4)])
	}
	return binary.LittleEndian.Uint64(b[4:12]), nil
}

// powercutRanges formats sorted seqs as ranges, e.g. "3..7 9", shortened.
func powercutRanges(seqs []uint64) string {
	var parts []string
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.FormatUint(seqs[i], 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d..%d", seqs[i], seqs[j]))
		}
		i = j + 1
	}
	if len(parts) > 20 {
		parts = append(parts[:20], fmt.Sprintf("... (%d ranges)", len(parts)))
	}
	return strings.Join(parts, " ")
}

// powercutTool runs a host tool and returns its exit code and combined
// output; failing to start it at all fails the test.
func powercutTool(t *testing.T, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	return 0, ""
}

// powercutRun runs a host tool that must succeed.
func powercutRun(t *testing.T, timeout time.Duration, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// ---- the console ----

// powercutConsole keeps a boot's console output in a file and its last
// lines in memory, for failure messages.
type powercutConsole struct {
	path string
	f    *os.File
	last []string
}

func newPowercutConsole(path string) (*powercutConsole, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &powercutConsole{path: path, f: f}, nil
}

func (c *powercutConsole) add(line string) {
	fmt.Fprintln(c.f, line)
	const keep = 200
	if len(c.last) == keep {
		c.last = slices.Delete(c.last, 0, 1)
	}
	c.last = append(c.last, line)
}

func (c *powercutConsole) tail(n int) string {
	return strings.Join(c.last[max(0, len(c.last)-n):], "\n")
}

func (c *powercutConsole) close() { c.f.Close() }

// ---- a newc cpio writer, the format the kernel unpacks an initramfs from ----

type cpioWriter struct {
	w   *bufio.Writer
	ino int
	err error
}

func newCpioWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: bufio.NewWriter(w), ino: 1} }

func (c *cpioWriter) dir(name string) { c.entry(name, 0o040000|0o755, 0, 0, nil) }

func (c *cpioWriter) charDev(name string, perm, major, minor int) {
	c.entry(name, 0o020000|perm, major, minor, nil)
}

func (c *cpioWriter) file(name string, data []byte, perm int) {
	c.entry(name, 0o100000|perm, 0, 0, data)
}

func (c *cpioWriter) fileFrom(t *testing.T, name, src string, perm int) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	c.file(name, data, perm)
}

// entry writes one header, name and data, each padded to 4 bytes.
func (c *cpioWriter) entry(name string, mode, rdevMajor, rdevMinor int, data []byte) {
	if c.err != nil {
		return
	}
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize (with the NUL), check.
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.ino++
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad(len(hdr) + len(name) + 1)
	c.write(data)
	c.pad(len(data))
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) close() error {
	c.entry("TRAILER!!!", 0, 0, 0, nil)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}

// TestPowerCutHelpers checks the loop's own logic without a VM, so it runs
// everywhere.
func TestPowerCutHelpers(t *testing.T) {
	t.Run("modules", func(t *testing.T) {
		dir := t.TempDir()
		dep := "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n" +
			"kernel/fs/jbd2/jbd2.ko:\nkernel/fs/mbcache.ko:\nkernel/lib/crc16.ko:\n" +
			"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n" +
			"kernel/drivers/virtio/virtio_ring.ko:\n" +
			"kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n" +
			"kernel/arch/x86/crypto/crc32c-intel.ko:\n"
		if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/fs/mbcache.ko\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		k := powercutKernel{modules: dir}
		got, err := powercutModuleFiles(k, []string{"virtio_blk", "ext4", "crc32c_intel", "virtio"})
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			got[i] = strings.TrimPrefix(got[i], dir+"/")
		}
		want := []string{
			"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/block/virtio_blk.ko.xz",
			"kernel/fs/jbd2/jbd2.ko", "kernel/lib/crc16.ko", "kernel/fs/ext4/ext4.ko",
			"kernel/arch/x86/crypto/crc32c-intel.ko",
		}
		if !slices.Equal(got, want) {
			t.Errorf("load order\n got %q\nwant %q", got, want)
		}
		if _, err := powercutModuleFiles(k, []string{"nonesuch"}); err == nil {
			t.Error("an unknown module: no error")
		}
	})
	t.Run("fsck", func(t *testing.T) {
		normal := `e2fsck 1.47.0 (5-Feb-2023)
powercut: recovering journal
Clearing orphaned inode 12 (uid=0, gid=0, mode=0100640, size=0)
Pass 1: Checking inodes, blocks, and sizes
Pass 5: Checking group summary information
Free blocks count wrong (14319, counted=14311).
Fix? yes

Free inodes count wrong (16373, counted=16368).
Fix? yes


powercut: ***** FILE SYSTEM WAS MODIFIED *****
powercut: 16/16384 files (6.3% non-contiguous), 2073/16384 blocks
`
		if odd := powercutFsckUnexpected(normal); len(odd) > 0 {
			t.Errorf("a normal recovery: unexpected %q", odd)
		}
		damaged := normal + "Inode 13 has illegal block(s).  Clear? yes\nBlock bitmap differences:  -(1234--1240)\n"
		if odd := powercutFsckUnexpected(damaged); len(odd) != 2 {
			t.Errorf("damage: got %q, want the two damage lines", odd)
		}
	})
	t.Run("ranges", func(t *testing.T) {
		if got := powercutRanges([]uint64{1, 2, 3, 5, 7, 8}); got != "1..3 5 7..8" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("synced line", func(t *testing.T) {
		line := `time=2026-11-26T15:20:42.708Z level=DEBUG msg="spool synced" through=11`
		if m := powercutSyncedRE.FindStringSubmatch(line); m == nil || m[1] != "11" {
			t.Errorf("%q: got %q", line, m)
		}
	})
}
