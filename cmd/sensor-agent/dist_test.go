package main

// The release drops (issue 6): `make dist` is run twice, from two copies of
// the source at different paths with separate build caches, and the test
// checks that
//   - both give the same bytes: binaries, tarballs, .debs, SHA256SUMS;
//   - the binaries are static, and their sizes (armv6 under 12 MB);
//   - the tarballs hold what install.sh needs, sorted, owned by 0, with the
//     commit's time, and install.sh installs from one (into a DESTDIR);
//   - the unit passes `systemd-analyze verify`, and the sysusers.d and
//     tmpfiles.d files apply to an empty root;
//   - the .debs: `dpkg-deb --info/--contents`, the conffile, the binary
//     inside, and no lintian error;
//   - the arm binaries run under Debian's qemu-user-static: armv6 as an
//     ARM1176 (Pi Zero/1), armv7, arm64 (and amd64 natively): `version`,
//     `check` with a sim sensor, and `run` publishing to the emulator;
//   - one version string (systemd/packaging/version.sh) in `version`, the
//     file names, the .deb's Version and changelog, and the README's
//     examples (those against the latest tag);
//   - LICENSE, THIRD_PARTY_LICENSES, the man page and the bash completion
//     in the tarballs, the .debs (copyright) and install.sh's tree.
//
// It is slow (two builds, about two minutes), so it runs only with CI=true,
// where a missing tool fails it, or SENSOR_AGENT_DIST=1 (make dist-check),
// where a missing tool skips it.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

// distMaxArmv6 is the size target for the armv6 binary.
const distMaxArmv6 = 12 << 20

// distArches are the binaries `make dist` builds: name in the file names,
// ELF machine, qemu command line ("" = native), the platform `version`
// prints, and the .deb architecture ("" = no package).
var distArches = []struct {
	name     string
	machine  elf.Machine
	qemu     []string
	platform string
	deb      string
}{
	{"armv6", elf.EM_ARM, []string{"qemu-arm-static", "-cpu", "arm1176"}, "linux/arm", "armhf"},
	{"armv7", elf.EM_ARM, []string{"qemu-arm-static"}, "linux/arm", ""},
	{"arm64", elf.EM_AARCH64, []string{"qemu-aarch64-static"}, "linux/arm64", "arm64"},
	{"amd64", elf.EM_X86_64, nil, "linux/amd64", "amd64"},
}

// distTools are the host programs the test runs, by Debian package.
var distTools = []struct{ cmd, pkg string }{
	{"make", "make"},
	{"tar", "tar"},
	{"gzip", "gzip"},
	{"systemd-analyze", "systemd"},
	{"systemd-sysusers", "systemd"},
	{"systemd-tmpfiles", "systemd"},
	{"dpkg-deb", "dpkg"},
	{"lintian", "lintian"},
	{"qemu-arm-static", "qemu-user-static"},
	{"qemu-aarch64-static", "qemu-user-static"},
}

// distBuild is one `make dist`.
type distBuild struct {
	dir   string            // $(DIST)
	files map[string][]byte // file name → content, every regular file
}

// distInfo is what both builds are stamped with.
type distInfo struct {
	version, commit, epoch string
}

func (d distInfo) fileVersion() string { return strings.TrimPrefix(d.version, "v") }

func TestDist(t *testing.T) {
	ci := os.Getenv("CI") == "true"
	if !ci && os.Getenv("SENSOR_AGENT_DIST") != "1" {
		t.Skip("builds every release drop twice (about two minutes): run make dist-check, or set SENSOR_AGENT_DIST=1")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("the dist checks run on an amd64 Linux host (qemu-user for the arm binaries), not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	var pkgs []string
	for _, tool := range distTools {
		if _, err := powercutLookPath(tool.cmd); err != nil && !slices.Contains(pkgs, tool.pkg) {
			pkgs = append(pkgs, tool.pkg)
		}
	}
	if len(pkgs) > 0 {
		msg := fmt.Sprintf("the dist checks need Debian packages %s: apt-get install %s",
			strings.Join(pkgs, ", "), strings.Join(pkgs, " "))
		if ci {
			t.Fatalf("%s (CI must install them)", msg)
		}
		t.Skip(msg)
	}
	goTool, err := findGo()
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	info := distVersion(t, root)
	t.Logf("version %s, commit %s, SOURCE_DATE_EPOCH %s", info.version, info.commit, info.epoch)

	// nfpm, built once for both builds.
	start := time.Now()
	gobin := filepath.Join(work, "gobin")
	distRun(t, 5*time.Minute, root, []string{"GOBIN=" + gobin}, goTool, "install", "github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2")
	nfpm := filepath.Join(gobin, "nfpm")
	t.Logf("nfpm v2.45.2 built in %s", time.Since(start).Round(time.Millisecond))

	// Build 1 from the source tree, with the build cache as it is.
	start = time.Now()
	b1 := distMake(t, root, filepath.Join(work, "dist1"), goTool, nfpm, info, nil)
	t.Logf("make dist: %d files in %s", len(b1.files), time.Since(start).Round(time.Millisecond))

	// Build 2 from a copy at another path, with an empty build cache, so
	// that everything is compiled again.
	start = time.Now()
	src2 := filepath.Join(work, "elsewhere", "sensor-agent-src")
	distCopyTree(t, root, src2)
	b2 := distMake(t, src2, filepath.Join(work, "dist2"), goTool, nfpm, info, []string{"GOCACHE=" + filepath.Join(work, "gocache")})
	t.Logf("make dist again, from %s with an empty build cache: %s", src2, time.Since(start).Round(time.Millisecond))

	t.Run("reproducible", func(t *testing.T) {
		names := slices.Sorted(func(yield func(string) bool) {
			for n := range b1.files {
				if !yield(n) {
					return
				}
			}
		})
		for _, n := range names {
			other, ok := b2.files[n]
			if !ok {
				t.Errorf("%s: only in the first build", n)
				continue
			}
			if !bytes.Equal(b1.files[n], other) {
				t.Errorf("%s: the two builds differ (%d and %d bytes)", n, len(b1.files[n]), len(other))
			}
		}
		for n := range b2.files {
			if _, ok := b1.files[n]; !ok {
				t.Errorf("%s: only in the second build", n)
			}
		}
		t.Logf("%d files identical across the two builds", len(names))
	})
	t.Run("SHA256SUMS", func(t *testing.T) { distCheckSums(t, b1) })
	t.Run("binaries", func(t *testing.T) { distCheckBinaries(t, b1, info) })
	t.Run("tarballs", func(t *testing.T) { distCheckTarballs(t, b1, info) })
	t.Run("install.sh", func(t *testing.T) { distCheckInstall(t, b1, info) })
	t.Run("systemd", func(t *testing.T) { distCheckSystemd(t, root, b1, info) })
	t.Run("deb", func(t *testing.T) { distCheckDebs(t, b1, info) })
	t.Run("versions", func(t *testing.T) { distCheckVersions(t, root, b1, info) })
	t.Run("run", func(t *testing.T) {
		for _, a := range distArches {
			t.Run(a.name, func(t *testing.T) {
				t.Parallel()
				bin := filepath.Join(b1.dir, "sensor-agent_"+info.fileVersion()+"_linux_"+a.name)
				distCheckRun(t, append(slices.Clone(a.qemu), bin), a.platform, info)
			})
		}
	})
}

// distVersion returns what the Makefile would stamp (from git), or fixed
// values outside a git checkout.
func distVersion(t *testing.T, root string) distInfo {
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	version, _ := exec.Command("sh", filepath.Join(root, "systemd", "packaging", "version.sh")).Output()
	d := distInfo{
		version: strings.TrimSpace(string(version)),
		commit:  git("rev-parse", "--short=12", "HEAD"),
		epoch:   git("log", "-1", "--format=%ct"),
	}
	if d.version == "" || d.version == "v0.0.0-unknown" || d.commit == "" || d.epoch == "" {
		t.Logf("not a git checkout: using a fixed version")
		d = distInfo{version: "v0.0.0-distcheck", commit: "000000000000", epoch: "1780000000"}
	}
	return d
}

// distMake runs make dist in src into dir and reads what it made.
func distMake(t *testing.T, src, dir, goTool, nfpm string, info distInfo, env []string) distBuild {
	t.Helper()
	env = append(env, "SOURCE_DATE_EPOCH="+info.epoch)
	distRun(t, 10*time.Minute, src, env, "make", "--no-print-directory", "dist",
		"GO="+goTool, "NFPM="+nfpm, "DIST="+dir, "VERSION="+info.version, "COMMIT="+info.commit)
	b := distBuild{dir: dir, files: map[string][]byte{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			t.Errorf("make dist left %s in %s", e.Name(), dir)
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b.files[e.Name()] = data
	}
	v := info.fileVersion()
	var want []string
	for _, a := range distArches {
		want = append(want, "sensor-agent_"+v+"_linux_"+a.name, "sensor-agent_"+v+"_linux_"+a.name+".tar.gz")
	}
	want = append(want, "SHA256SUMS")
	for _, n := range want {
		if _, ok := b.files[n]; !ok {
			t.Fatalf("make dist did not make %s; it made %v", n, slices.Sorted(func(y func(string) bool) {
				for n := range b.files {
					y(n)
				}
			}))
		}
	}
	return b
}

// distRun runs a command, failing the test on error, and returns stdout.
func distRun(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String()
}

// distCopyTree copies the source tree without .git, bin and dist.
func distCopyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() && (rel == ".git" || rel == "bin" || rel == "dist") {
			return filepath.SkipDir
		}
		target := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, fi.Mode().Perm())
		}
		return nil // sockets, symlinks: none in the source
	})
	if err != nil {
		t.Fatal(err)
	}
}

func distCheckSums(t *testing.T, b distBuild) {
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b.files["SHA256SUMS"]))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Errorf("SHA256SUMS: bad line %q", sc.Text())
			continue
		}
		data, ok := b.files[name]
		if !ok {
			t.Errorf("SHA256SUMS lists %s, not in dist", name)
			continue
		}
		if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum {
			t.Errorf("SHA256SUMS: %s: wrong sum", name)
		}
		listed[name] = true
	}
	for n := range b.files {
		if n != "SHA256SUMS" && !listed[n] {
			t.Errorf("%s is not in SHA256SUMS", n)
		}
	}
	t.Logf("%d files, every sum right", len(listed))
}

func distCheckBinaries(t *testing.T, b distBuild, info distInfo) {
	for _, a := range distArches {
		name := "sensor-agent_" + info.fileVersion() + "_linux_" + a.name
		data := b.files[name]
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			t.Errorf("%s: not ELF: %v", name, err)
			continue
		}
		if f.Machine != a.machine {
			t.Errorf("%s: machine %v, want %v", name, f.Machine, a.machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s: has %v: not static", name, p.Type)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s: needs %v: not static", name, libs)
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s: not stripped (-s -w)", name)
		}
		t.Logf("%-6s %9d bytes (%.1f MiB)", a.name, len(data), float64(len(data))/(1<<20))
		if a.name == "armv6" && len(data) >= distMaxArmv6 {
			t.Errorf("%s: %d bytes, target under %d", name, len(data), distMaxArmv6)
		}
	}
}

// distTarEntry is one tarball member.
type distTarEntry struct {
	hdr  *tar.Header
	data []byte
}

func distReadTar(t *testing.T, r io.Reader) []distTarEntry {
	t.Helper()
	var out []distTarEntry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, distTarEntry{h, data})
	}
}

func distCheckTarballs(t *testing.T, b distBuild, info distInfo) {
	epoch, _ := strconv.ParseInt(info.epoch, 10, 64)
	for _, a := range distArches {
		name := "sensor-agent_" + info.fileVersion() + "_linux_" + a.name
		zr, err := gzip.NewReader(bytes.NewReader(b.files[name+".tar.gz"]))
		if err != nil {
			t.Fatalf("%s.tar.gz: %v", name, err)
		}
		if !zr.ModTime.IsZero() || zr.Name != "" {
			t.Errorf("%s.tar.gz: gzip header has a time (%v) or name (%q)", name, zr.ModTime, zr.Name)
		}
		entries := distReadTar(t, zr)
		want := map[string]int64{ // path → mode
			name + "/":                              0o755,
			name + "/README.md":                     0o644,
			name + "/configs/":                      0o755,
			name + "/configs/example.yaml":          0o644,
			name + "/install.sh":                    0o755,
			name + "/sensor-agent":                  0o755,
			name + "/systemd/":                      0o755,
			name + "/systemd/sensor-agent.service":  0o644,
			name + "/systemd/sensor-agent.sysusers": 0o644,
			name + "/systemd/sensor-agent.tmpfiles": 0o644,
			name + "/systemd/sensor-agent.1":        0o644,
			name + "/systemd/sensor-agent.bash":     0o644,
			name + "/LICENSE":                       0o644,
			name + "/THIRD_PARTY_LICENSES":          0o644,
		}
		var names []string
		for _, e := range entries {
			h := e.hdr
			names = append(names, h.Name)
			mode, ok := want[h.Name]
			if !ok {
				t.Errorf("%s.tar.gz: unexpected %s", name, h.Name)
				continue
			}
			delete(want, h.Name)
			if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
				t.Errorf("%s: owner %d/%d (%q/%q), want 0/0 and no names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
			}
			if h.Mode&0o7777 != mode {
				t.Errorf("%s: mode %o, want %o", h.Name, h.Mode&0o7777, mode)
			}
			if h.ModTime.Unix() != epoch {
				t.Errorf("%s: mtime %v, want the commit's %v", h.Name, h.ModTime, time.Unix(epoch, 0))
			}
		}
		for n := range want {
			t.Errorf("%s.tar.gz: %s missing", name, n)
		}
		if !slices.IsSorted(names) {
			t.Errorf("%s.tar.gz: names not sorted: %v", name, names)
		}
		same := map[string]string{"LICENSE": "../../LICENSE", "THIRD_PARTY_LICENSES": "../../systemd/packaging/THIRD_PARTY_LICENSES",
			"systemd/sensor-agent.1": "../../systemd/packaging/sensor-agent.1"}
		for _, e := range entries {
			if e.hdr.Name == name+"/sensor-agent" && !bytes.Equal(e.data, b.files[name]) {
				t.Errorf("%s.tar.gz: the binary differs from %s", name, name)
			}
			if src, ok := same[strings.TrimPrefix(e.hdr.Name, name+"/")]; ok {
				if want, err := os.ReadFile(src); err != nil || !bytes.Equal(e.data, want) {
					t.Errorf("%s.tar.gz: %s is not %s (%v)", name, e.hdr.Name, src, err)
				}
			}
			if e.hdr.Name == name+"/systemd/sensor-agent.bash" && !bytes.Contains(e.data, []byte("complete -o bashdefault -o default -F _sensor_agent sensor-agent")) {
				t.Errorf("%s.tar.gz: %s is not the bash completion", name, e.hdr.Name)
			}
		}
	}
}

// distExtract unpacks a tarball into dir.
func distExtract(t *testing.T, tgz []byte, dir string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range distReadTar(t, zr) {
		p := filepath.Join(dir, e.hdr.Name)
		if e.hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, e.data, os.FileMode(e.hdr.Mode&0o777)); err != nil {
			t.Fatal(err)
		}
	}
}

// distCheckInstall runs the amd64 tarball's install.sh into a DESTDIR, then
// --uninstall.
func distCheckInstall(t *testing.T, b distBuild, info distInfo) {
	name := "sensor-agent_" + info.fileVersion() + "_linux_amd64"
	dir := t.TempDir()
	distExtract(t, b.files[name+".tar.gz"], dir)
	dest := filepath.Join(t.TempDir(), "root")
	out := distRun(t, time.Minute, filepath.Join(dir, name), nil, "sh", "./install.sh", "--destdir", dest)
	t.Logf("install.sh --destdir:\n%s", out)
	want := map[string]os.FileMode{
		"usr/local/bin/sensor-agent":                               0o755,
		"etc/systemd/system/sensor-agent.service":                  0o644,
		"etc/sysusers.d/sensor-agent.conf":                         0o644,
		"etc/tmpfiles.d/sensor-agent.conf":                         0o644,
		"etc/sensor-agent/config.yaml.example":                     0o640,
		"usr/local/share/doc/sensor-agent/README.md":               0o644,
		"usr/local/share/doc/sensor-agent/LICENSE":                 0o644,
		"usr/local/share/doc/sensor-agent/THIRD_PARTY_LICENSES":    0o644,
		"usr/local/share/man/man1/sensor-agent.1":                  0o644,
		"usr/local/share/bash-completion/completions/sensor-agent": 0o644,
	}
	for p, mode := range want {
		fi, err := os.Stat(filepath.Join(dest, p))
		if err != nil {
			t.Errorf("install.sh did not install %s: %v", p, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %o, want %o", p, fi.Mode().Perm(), mode)
		}
	}
	unit, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/sensor-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/sensor-agent run -config /etc/sensor-agent/config.yaml$`).Match(unit) {
		t.Errorf("installed unit does not run /usr/local/bin/sensor-agent:\n%s", unit)
	}
	bin, _ := os.ReadFile(filepath.Join(dest, "usr/local/bin/sensor-agent"))
	if !bytes.Equal(bin, b.files[name]) {
		t.Errorf("installed binary differs from %s", name)
	}
	if !strings.Contains(out, "sensor-agent "+info.version+" commit "+info.commit) {
		t.Errorf("install.sh did not report the installed version %s", info.version)
	}
	distRun(t, time.Minute, filepath.Join(dir, name), nil, "sh", "./install.sh", "--destdir", dest, "--uninstall")
	for p := range want {
		if _, err := os.Stat(filepath.Join(dest, p)); err == nil {
			t.Errorf("install.sh --uninstall left %s", p)
		}
	}
}

// distCheckSystemd verifies the unit and applies the sysusers.d and
// tmpfiles.d files to an empty root.
func distCheckSystemd(t *testing.T, root string, b distBuild, info distInfo) {
	analyze, _ := powercutLookPath("systemd-analyze")
	unit, err := os.ReadFile(filepath.Join(root, "systemd", "sensor-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	// systemd-analyze verify checks that ExecStart= names an executable,
	// and the unit's /usr/bin/sensor-agent is not installed on the build
	// machine (--root= would need a whole systemd tree under it). So the
	// unit is verified as is, where that must be the only complaint, and
	// as a copy whose ExecStart= is the amd64 binary just built, which
	// must pass clean.
	const execStart = "ExecStart=/usr/bin/sensor-agent "
	if !bytes.Contains(unit, []byte("\n"+execStart)) {
		t.Fatalf("the unit has no %q line", execStart)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sensor-agent")
	if err := os.WriteFile(bin, b.files["sensor-agent_"+info.fileVersion()+"_linux_amd64"], 0o755); err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(dir, "unit")
	os.Mkdir(copyDir, 0o755)
	copyUnit := filepath.Join(copyDir, "sensor-agent.service")
	if err := os.WriteFile(copyUnit, bytes.Replace(unit, []byte(execStart), []byte("ExecStart="+bin+" "), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.CommandContext(t.Context(), analyze, "verify", "--man=no", copyUnit)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify (ExecStart= the built binary): %v\n%s", err, out)
	}
	t.Logf("systemd-analyze verify: clean (%s)", time.Since(start).Round(time.Millisecond))

	if _, err := os.Stat("/usr/bin/sensor-agent"); err != nil {
		cmd = exec.CommandContext(t.Context(), analyze, "verify", "--man=no", filepath.Join(root, "systemd", "sensor-agent.service"))
		out, _ = cmd.CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !strings.Contains(line, "Command /usr/bin/sensor-agent is not executable") {
				t.Errorf("systemd-analyze verify (the unit as shipped): %s", line)
			}
		}
	}
	out, err = exec.CommandContext(t.Context(), analyze, "security", "--offline=yes", "--no-pager", copyUnit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`Overall exposure level for \S+: (\S+ \S+)`).FindSubmatch(out); m != nil {
		t.Logf("systemd-analyze security: exposure %s", m[1])
	}

	// sysusers.d and tmpfiles.d, applied to an empty root.
	sysroot := t.TempDir()
	os.MkdirAll(filepath.Join(sysroot, "etc"), 0o755)
	distRun(t, time.Minute, root, nil, "systemd-sysusers", "--root="+sysroot, filepath.Join(root, "systemd", "sensor-agent.sysusers"))
	passwd, _ := os.ReadFile(filepath.Join(sysroot, "etc", "passwd"))
	group, _ := os.ReadFile(filepath.Join(sysroot, "etc", "group"))
	if !regexp.MustCompile(`(?m)^sensor-agent:x:\d+:\d+:[^:]*:/var/lib/sensor-agent:/usr/sbin/nologin$`).Match(passwd) {
		t.Errorf("sysusers: no sensor-agent system user:\n%s", passwd)
	}
	for _, g := range []string{"i2c", "gpio"} {
		if !regexp.MustCompile(`(?m)^` + g + `:x:\d+:sensor-agent$`).Match(group) {
			t.Errorf("sysusers: sensor-agent not in group %s:\n%s", g, group)
		}
	}
	distRun(t, time.Minute, root, nil, "systemd-tmpfiles", "--root="+sysroot, "--create", filepath.Join(root, "systemd", "sensor-agent.tmpfiles"))
	for p, mode := range map[string]os.FileMode{"var/lib/sensor-agent": 0o750, "etc/sensor-agent": 0o750} {
		fi, err := os.Stat(filepath.Join(sysroot, p))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != mode {
			t.Errorf("tmpfiles: /%s: %v, %v; want a directory with mode %o", p, fi, err, mode)
		}
	}
}

// distCheckDebs checks each package with dpkg-deb and lintian.
func distCheckDebs(t *testing.T, b distBuild, info distInfo) {
	var debs []string
	for n := range b.files {
		if strings.HasSuffix(n, ".deb") {
			debs = append(debs, filepath.Join(b.dir, n))
		}
	}
	slices.Sort(debs)
	for _, a := range distArches {
		if a.deb == "" {
			continue
		}
		i := slices.IndexFunc(debs, func(p string) bool { return strings.HasSuffix(p, "_"+a.deb+".deb") })
		if i < 0 {
			t.Errorf("no %s package in %v", a.deb, debs)
			continue
		}
		deb := debs[i]
		fields := distRun(t, time.Minute, b.dir, nil, "dpkg-deb", "--field", deb, "Package", "Version", "Architecture", "Depends")
		for _, want := range []string{"Package: sensor-agent\n", "Architecture: " + a.deb + "\n", "Depends: systemd, procps\n"} {
			if !strings.Contains(fields, want) {
				t.Errorf("%s: fields\n%s\nwant %q", filepath.Base(deb), fields, want)
			}
		}
		version := regexp.MustCompile(`(?m)^Version: (\S+)$`).FindStringSubmatch(fields)
		if version == nil || !strings.Contains(filepath.Base(deb), "_"+version[1]+"_") {
			t.Errorf("%s: version %v does not match the file name", filepath.Base(deb), version)
		}
		contents := distRun(t, time.Minute, b.dir, nil, "dpkg-deb", "--contents", deb)
		for _, p := range []string{
			"./usr/bin/sensor-agent", "./lib/systemd/system/sensor-agent.service",
			"./usr/lib/sysusers.d/sensor-agent.conf", "./usr/lib/tmpfiles.d/sensor-agent.conf",
			"./etc/sensor-agent/config.yaml.example", "./usr/share/doc/sensor-agent/copyright",
			"./usr/share/doc/sensor-agent/changelog.gz", "./usr/share/doc/sensor-agent/README.md.gz",
			"./usr/share/man/man1/sensor-agent.1.gz", "./usr/share/lintian/overrides/sensor-agent",
			"./usr/share/bash-completion/completions/sensor-agent",
		} {
			if !regexp.MustCompile(`(?m) root/root .* ` + regexp.QuoteMeta(p) + `$`).MatchString(contents) {
				t.Errorf("%s: %s missing or not owned by root:\n%s", filepath.Base(deb), p, contents)
			}
		}
		if strings.Contains(contents, "./etc/sensor-agent/config.yaml\n") {
			t.Errorf("%s ships /etc/sensor-agent/config.yaml: the service would start on the example", filepath.Base(deb))
		}
		if got := distRun(t, time.Minute, b.dir, nil, "dpkg-deb", "--info", deb, "conffiles"); got != "/etc/sensor-agent/config.yaml.example\n" {
			t.Errorf("%s: conffiles %q, want the example config", filepath.Base(deb), got)
		}
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			script := distRun(t, time.Minute, b.dir, nil, "dpkg-deb", "--info", deb, s)
			cmd := exec.Command("sh", "-n")
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: %s: sh -n: %v\n%s", filepath.Base(deb), s, err, out)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
		tarball, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatalf("dpkg-deb --fsys-tarfile %s: %v", deb, err)
		}
		for _, e := range distReadTar(t, bytes.NewReader(tarball)) {
			if e.hdr.Name == "./usr/bin/sensor-agent" && !bytes.Equal(e.data, b.files["sensor-agent_"+info.fileVersion()+"_linux_"+a.name]) {
				t.Errorf("%s: /usr/bin/sensor-agent is not the %s binary", filepath.Base(deb), a.name)
			}
			if e.hdr.Name == "./usr/share/doc/sensor-agent/copyright" {
				if want, err := os.ReadFile("../../systemd/packaging/copyright"); err != nil || !bytes.Equal(e.data, want) {
					t.Errorf("%s: copyright is not systemd/packaging/copyright (%v)", filepath.Base(deb), err)
				}
			}
		}
		t.Logf("%s: %d bytes, dpkg-deb ok", filepath.Base(deb), len(b.files[filepath.Base(deb)]))
	}

	// lintian: no error (its exit status, and no E: line); warnings and
	// the override (the static binary, see systemd/packaging/
	// lintian-overrides) are listed. --show-overrides would count the
	// overridden error in the exit status, so it has a run of its own.
	start := time.Now()
	lintian := func(extra ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		args := append([]string{"--display-level", ">=info", "--tag-display-limit", "0"}, extra...)
		cmd := exec.CommandContext(ctx, "lintian", append(args, debs...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("%w\n%s%s", err, stdout.Bytes(), stderr.Bytes())
		}
		return stdout.String(), err
	}
	if _, err := lintian(); err != nil {
		t.Errorf("lintian: %v", err)
	}
	out, _ := lintian("--show-overrides")
	tags := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if m := regexp.MustCompile(`^([EWIPXO]): (\S+ \S+.*)$`).FindStringSubmatch(line); m != nil {
			tags[m[1]+": "+m[2]]++
		}
	}
	var summary []string
	for _, k := range slices.Sorted(func(y func(string) bool) {
		for k := range tags {
			y(k)
		}
	}) {
		summary = append(summary, fmt.Sprintf("  %s (×%d)", k, tags[k]))
		if strings.HasPrefix(k, "E: ") {
			t.Errorf("lintian error: %s", k)
		}
	}
	t.Logf("lintian on %d packages in %s (O: overridden):\n%s", len(debs), time.Since(start).Round(time.Millisecond), strings.Join(summary, "\n"))
}

// distCheckRun runs one binary (argv: qemu and its options, then the
// binary): version, check with a sim sensor, and run publishing to the
// emulator.
func distCheckRun(t *testing.T, argv []string, platform string, info distInfo) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	exe := func(args ...string) (string, string, error) {
		cmd := exec.CommandContext(ctx, argv[0], append(slices.Clone(argv[1:]), args...)...)
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
			return strings.HasPrefix(kv, "JOURNAL_STREAM=") || strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "WATCHDOG_")
		})
		cmd.Dir = t.TempDir()
		cmd.WaitDelay = 5 * time.Second
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	start := time.Now()
	out, errOut, err := exe("version")
	want := fmt.Sprintf("sensor-agent %s commit %s %s %s\n", info.version, info.commit, runtime.Version(), platform)
	if err != nil || out != want {
		t.Fatalf("version: %v: %q, want %q\n%s", err, out, want, errOut)
	}
	t.Logf("version: %s", strings.TrimSpace(out))

	srv, pki := startEmulator(t, iotemu.Options{})
	cfg := agentConfig{device: "pi-dist", addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
		maxReadings: 10, flushInterval: "200ms", sensors: twoSimSensors}.write(t)
	out, errOut, err = exe("check", "-config", cfg)
	if err != nil || !strings.Contains(out, "certificate and key ok") || !strings.Contains(out, "sensor air (sim): ") {
		t.Fatalf("check: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}

	from := time.Now()
	out, errOut, err = exe("run", "-config", cfg, "-exit-when-idle")
	if err != nil {
		t.Fatalf("run -exit-when-idle: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	rs := decodeMessages(t, srv.Messages(), "pi-dist", "batch", 10, from, time.Now())
	checkSeqs(t, rs, 1, 42, false)
	checkSimValues(t, rs, map[string]int{"air": 30, "door": 12})
	how := "native"
	if len(argv) > 1 {
		how = strings.Join(argv[:len(argv)-1], " ")
	}
	t.Logf("%s: version, check and run (42 readings in %d messages) in %s",
		how, len(srv.Messages()), time.Since(start).Round(time.Millisecond))
}

// distCheckVersions: one version string. `version` prints info.version
// (distCheckRun), the file names carry it without its "v" (distMake); here
// the .debs' Version and changelog carry its Debian form, and the README's
// examples the latest tag's.
func distCheckVersions(t *testing.T, root string, b distBuild, info distInfo) {
	debv := debVersion(t, info.version)
	for _, a := range distArches {
		if a.deb == "" {
			continue
		}
		name := "sensor-agent_" + debv + "_" + a.deb + ".deb"
		if _, ok := b.files[name]; !ok {
			t.Errorf("no %s: the .deb's version is not version.sh's mapping of %s", name, info.version)
			continue
		}
		deb := filepath.Join(b.dir, name)
		if v := distRun(t, time.Minute, b.dir, nil, "dpkg-deb", "--field", deb, "Version"); v != debv+"\n" {
			t.Errorf("%s: Version %q, want %q", name, v, debv)
		}
		tarball := distRun(t, time.Minute, b.dir, nil, "dpkg-deb", "--fsys-tarfile", deb)
		for _, e := range distReadTar(t, strings.NewReader(tarball)) {
			if e.hdr.Name != "./usr/share/doc/sensor-agent/changelog.gz" {
				continue
			}
			zr, err := gzip.NewReader(bytes.NewReader(e.data))
			if err != nil {
				t.Fatal(err)
			}
			log, _ := io.ReadAll(zr)
			if first, _, _ := strings.Cut(string(log), "\n"); first != "sensor-agent ("+debv+") unstable; urgency=medium" ||
				!strings.Contains(string(log), "Build of "+info.version+" ") {
				t.Errorf("%s: changelog does not name %s and %s:\n%s", name, debv, info.version, log)
			}
		}
	}
	t.Logf("version %s: files %s, .deb %s", info.version, info.fileVersion(), debv)

	cmd := exec.Command("git", "describe", "--tags", "--abbrev=0", "--match", "v[0-9]*")
	cmd.Dir = root
	out, err := cmd.Output()
	tag := strings.TrimSpace(string(out))
	readme, rerr := os.ReadFile(filepath.Join(root, "README.md"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil || tag == "" {
		t.Logf("no version tag: the README's versions are not checked (tag a release: git tag v1.2.3)")
		return
	}
	problems, checked := readmeVersionProblems(string(readme), tag, func(v string) string { return debVersion(t, v) })
	for _, p := range problems {
		t.Errorf("README: %s", p)
	}
	t.Logf("README: %d versions checked against the tag %s", checked, tag)
}

// readmeVersionProblems lists the README's release file names and logged
// versions that are not the tag's (deb maps a version to its Debian form).
func readmeVersionProblems(readme, tag string, deb func(string) string) (problems []string, checked int) {
	for _, m := range regexp.MustCompile(`sensor-agent_([^_\s]+)_(linux_[a-z0-9]+|armhf|arm64|amd64)`).FindAllStringSubmatch(readme, -1) {
		want := strings.TrimPrefix(tag, "v")
		if !strings.HasPrefix(m[2], "linux_") {
			want = deb(tag)
		}
		if m[1] != want {
			problems = append(problems, fmt.Sprintf("%s, want version %s (the tag %s)", m[0], want, tag))
		}
		checked++
	}
	for _, m := range regexp.MustCompile(`version=(v[0-9]\S*)`).FindAllStringSubmatch(readme, -1) {
		if m[1] != tag {
			problems = append(problems, fmt.Sprintf("version=%s, want %s (the tag)", m[1], tag))
		}
		checked++
	}
	return problems, checked
}
