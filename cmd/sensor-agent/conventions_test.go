package main

// The conventions a packager and a user expect (issue 10): -h on every
// command without reading the config, --version, the exit statuses, the
// man page covering every command and flag, the bash completion, the
// licences, the version scheme.

import (
	"bytes"
	"debug/buildinfo"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// commandLines returns every command line that names a command: each
// command, and each spool or completion subcommand.
func commandLines() [][]string {
	var out [][]string
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range commands {
			if !yield(n) {
				return
			}
		}
	}) {
		if subs, ok := subcommands[n]; ok {
			out = append(out, []string{n})
			for _, s := range subs {
				out = append(out, []string{n, s})
			}
			continue
		}
		out = append(out, []string{n})
	}
	return out
}

// TestHelp runs the binary with -h, -help and --help after every command
// and subcommand: usage on stderr, exit 0, and no config read (the config
// named does not exist: reading it would fail).
func TestHelp(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	var lines [][]string
	for _, cl := range commandLines() {
		for _, h := range []string{"-h", "-help", "--help"} {
			lines = append(lines, append(slices.Clone(cl), h))
		}
		if slices.ContainsFunc(commandFlags(cl[0], cl[1:]...), func(f *flag.Flag) bool { return f.Name == "config" }) {
			lines = append(lines, append(slices.Clone(cl), "-config", missing, "-h"))
		}
	}
	lines = append(lines, []string{"-h"}, []string{"--help"}, []string{"help"}, []string{"help", "spool"}, []string{"help", "-h"})
	for _, args := range lines {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			r := sensorAgent(t, testContext(t), nil, args...)
			if r.code != exitOK {
				t.Errorf("exit %d, want 0\nstderr:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(strings.ToLower(r.stderr), "usage") {
				t.Errorf("no usage on stderr:\n%s", r.stderr)
			}
			if strings.Contains(r.stderr, "config:") || strings.Contains(r.stderr, "missing.yaml:") {
				t.Errorf("the config was read:\n%s", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

// TestVersionFlags: --version, -version and version print the same line.
func TestVersionFlags(t *testing.T) {
	t.Parallel()
	want := fmt.Sprintf("sensor-agent %s commit %s %s %s/%s\n", e2eVersion, e2eCommit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, arg := range []string{"version", "--version", "-version"} {
		r := sensorAgent(t, testContext(t), nil, arg)
		if r.code != 0 || r.stdout != want {
			t.Errorf("%s: exit %d, printed %q, want %q\nstderr:\n%s", arg, r.code, r.stdout, want, r.stderr)
		}
	}
}

// TestExitStatus: the documented statuses from the real binary, and the
// unit's RestartPreventExitStatus= for the config's.
func TestExitStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("device_id: pi\nendpoint:\n  host: h\n  cert_file: c\n  key_file: k\nsensors:\n  - name: a\n    driver: sim\n    intervall: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"run", "-config", bad}, exitConfig, "intervall: unknown key"},
		{[]string{"run", "-config", missing}, exitConfig, "no such file"},
		{[]string{"check", "-config", bad}, exitConfig, "intervall: unknown key"},
		{[]string{"spool", "stats", "-config", bad}, exitConfig, "intervall: unknown key"},
		{[]string{"publish", "-config", bad, "-topic", "t", "x"}, exitConfig, "intervall: unknown key"},
		{[]string{"spool", "verify", "-dir", missing}, exitFailure, "no such file"},
		{[]string{}, exitUsage, "usage:"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"run", "-no-such-flag"}, exitUsage, "flag provided but not defined"},
		{[]string{"spool", "frobnicate"}, exitUsage, "usage:"},
		{[]string{"completion", "zsh"}, exitUsage, "usage:"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := sensorAgent(t, testContext(t), nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want %d; stderr (want %q):\n%s", r.code, tc.code, tc.want, r.stderr)
			}
		})
	}
	unit, err := os.ReadFile("../../systemd/sensor-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^RestartPreventExitStatus=%d$`, exitConfig)).Match(unit) {
		t.Errorf("the unit lacks RestartPreventExitStatus=%d: systemd would restart a bad config forever", exitConfig)
	}
}

// TestManPage: every command, subcommand and flag, every exit status and
// the sections a man page has.
func TestManPage(t *testing.T) {
	data, err := os.ReadFile("../../systemd/packaging/sensor-agent.1")
	if err != nil {
		t.Fatal(err)
	}
	man := string(data)
	for _, sec := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "SIGNALS", "ENVIRONMENT", "FILES", "SEE ALSO"} {
		if !regexp.MustCompile(`(?m)^\.SH "?` + sec + `"?$`).MatchString(man) {
			t.Errorf("no section %s", sec)
		}
	}
	section := func(name string) string {
		_, rest, _ := strings.Cut(man, "\n.SH "+name+"\n")
		body, _, _ := strings.Cut(rest, "\n.SH ")
		return body
	}
	cmds := section("COMMANDS")
	roff := func(s string) string { return strings.ReplaceAll(s, "-", `\-`) }
	for _, cl := range commandLines() {
		// A command is the start of a .TP heading: ".B name".
		if !regexp.MustCompile(`(?m)^\.B ` + regexp.QuoteMeta(roff(cl[0])) + `\b`).MatchString(cmds) {
			t.Errorf("command %s is not a heading in COMMANDS", cl[0])
		}
		for _, s := range cl[1:] {
			if !strings.Contains(cmds, s) {
				t.Errorf("%s %s is not in COMMANDS", cl[0], s)
			}
		}
		for _, f := range commandFlags(cl[0], cl[1:]...) {
			if !strings.Contains(cmds, `\-`+roff(f.Name)) {
				t.Errorf("%s: flag -%s is not in COMMANDS", strings.Join(cl, " "), f.Name)
			}
		}
	}
	exits := section("EXIT STATUS")
	for _, code := range []int{exitOK, exitFailure, exitUsage, exitNotRunning, exitConfig} {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^\.B %d$`, code)).MatchString(exits) {
			t.Errorf("exit status %d is not in EXIT STATUS", code)
		}
	}
	env := section("ENVIRONMENT")
	for _, v := range []string{"HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "JOURNAL_STREAM", "RUNTIME_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		if !strings.Contains(env, v) {
			t.Errorf("%s is not in ENVIRONMENT", v)
		}
	}
	if sig := section("SIGNALS"); !strings.Contains(sig, "SIGHUP") || !strings.Contains(sig, "SIGTERM") {
		t.Errorf("SIGNALS lacks SIGHUP or SIGTERM:\n%s", sig)
	}
	if man, err := exec.LookPath("man"); err == nil {
		cmd := exec.Command(man, "--warnings", "-l", "-Tutf8", "-Z", "../../systemd/packaging/sensor-agent.1")
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MANWIDTH=80")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = nil, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man --warnings: %v\n%s", err, stderr.Bytes())
		}
	}
}

// TestCompletion sources the script printed by `completion bash` in bash
// and completes command names, subcommands, flags and directories.
func TestCompletion(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	r := sensorAgent(t, testContext(t), nil, "completion", "bash")
	if r.code != 0 {
		t.Fatalf("completion bash: exit %d\n%s", r.code, r.stderr)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "sensor-agent.bash")
	if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "subdir"), 0o755)
	os.WriteFile(filepath.Join(dir, "subfile"), nil, 0o644)
	complete := func(words ...string) []string {
		t.Helper()
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		src := fmt.Sprintf("source %q && COMP_WORDS=(%s) && COMP_CWORD=%d && _sensor_agent && printf '%%s\\n' \"${COMPREPLY[@]}\"",
			script, strings.Join(quoted, " "), len(words)-1)
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", src).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		got := strings.Fields(string(out))
		slices.Sort(got)
		return got
	}
	out, err := exec.Command(bash, "--norc", "--noprofile", "-c", "source "+script+" && complete -p sensor-agent").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-F _sensor_agent") || !strings.HasSuffix(strings.TrimSpace(string(out)), " sensor-agent") {
		t.Errorf("complete -p sensor-agent: %v: %s", err, out)
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"sensor-agent", "sp"}, []string{"spool"}},
		{[]string{"sensor-agent", "help", "dr"}, []string{"drivers"}},
		{[]string{"sensor-agent", "--v"}, []string{"--version"}},
		{[]string{"sensor-agent", "run", "-ex"}, []string{"-exit-when-idle"}},
		{[]string{"sensor-agent", "spool", "st"}, []string{"stats"}},
		{[]string{"sensor-agent", "spool", "stats", "-j"}, []string{"-json"}},
		{[]string{"sensor-agent", "doctor", "-j"}, []string{"-json"}},
		{[]string{"sensor-agent", "completion", ""}, []string{"-h", "bash"}},
		{[]string{"sensor-agent", "spool", "export", "-dir", filepath.Join(dir, "sub")}, []string{filepath.Join(dir, "subdir")}},
		{[]string{"sensor-agent", "check", "-config", filepath.Join(dir, "sub")}, []string{filepath.Join(dir, "subdir"), filepath.Join(dir, "subfile")}},
		{[]string{"sensor-agent", "publish", "-topic", ""}, nil},
	} {
		if got := complete(tc.words...); !slices.Equal(got, tc.want) {
			t.Errorf("%q: completed %q, want %q", tc.words, got, tc.want)
		}
	}
	// Every command and every flag completes.
	for _, cl := range commandLines() {
		if got := complete("sensor-agent", cl[0]); !slices.Contains(got, cl[0]) {
			t.Errorf("%s: completed %q", cl[0], got)
		}
		for _, f := range commandFlags(cl[0], cl[1:]...) {
			words := append(append([]string{"sensor-agent"}, cl...), "-"+f.Name)
			if got := complete(words...); !slices.Contains(got, "-"+f.Name) {
				t.Errorf("%q: completed %q", words, got)
			}
		}
	}
}

// TestThirdPartyLicenses: THIRD_PARTY_LICENSES holds the licence and
// notice files, verbatim, of exactly the modules compiled into the binary
// (and Go's); the .deb's copyright has a paragraph for each, under
// Apache-2.0 for the rest; LICENSE is the Apache License 2.0.
func TestThirdPartyLicenses(t *testing.T) {
	t.Parallel()
	goTool, err := findGo()
	if err != nil {
		t.Fatal(err)
	}
	env := func(name string) string {
		out, err := exec.Command(goTool, "env", name).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	bi, err := buildinfo.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../systemd/packaging/THIRD_PARTY_LICENSES")
	if err != nil {
		t.Fatal(err)
	}
	notices := string(data)
	const fix = "; run make licenses"
	sections := map[string]string{} // title → text
	parts := strings.Split(notices, "\n"+strings.Repeat("=", 80)+"\n")
	for _, p := range parts[1:] {
		title, body, _ := strings.Cut(p, "\n")
		sections[title] = body
	}
	want := map[string]string{"Go standard library and runtime (https://go.dev)": env("GOROOT")}
	modcache := env("GOMODCACHE")
	for _, d := range bi.Deps {
		want[d.Path+" "+d.Version] = filepath.Join(modcache, escapeModulePath(d.Path)+"@"+d.Version)
	}
	copyright, err := os.ReadFile("../../systemd/packaging/copyright")
	if err != nil {
		t.Fatal(err)
	}
	for title, dir := range want {
		body, ok := sections[title]
		if !ok {
			t.Errorf("THIRD_PARTY_LICENSES has no section %q%s", title, fix)
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, "[LCNP]*"))
		n := 0
		for _, f := range files {
			base := filepath.Base(f)
			if !regexp.MustCompile(`^(LICEN[CS]E|COPYING|NOTICE|PATENTS)`).MatchString(base) {
				continue
			}
			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			n++
			if !strings.Contains(body, string(text)) {
				t.Errorf("THIRD_PARTY_LICENSES: %s: %s is not there verbatim%s", title, base, fix)
			}
		}
		if n == 0 {
			t.Errorf("%s: no licence file in %s", title, dir)
		}
		if path, _, ok := strings.Cut(title, " "); ok && !strings.HasPrefix(title, "Go ") &&
			!regexp.MustCompile(`(?m)^Files: `+regexp.QuoteMeta(path)+`/\*$`).Match(copyright) {
			t.Errorf("systemd/packaging/copyright has no Files: %s/* paragraph", path)
		}
	}
	for title := range sections {
		if _, ok := want[title]; !ok {
			t.Errorf("THIRD_PARTY_LICENSES has %q, which is not in the binary%s", title, fix)
		}
	}
	if !regexp.MustCompile(`(?m)^Files: \*\nCopyright: .*\nLicense: Apache-2.0$`).Match(copyright) {
		t.Errorf("copyright: Files: * is not under Apache-2.0")
	}
	for _, l := range regexp.MustCompile(`(?m)^License: (.+)$`).FindAllSubmatch(copyright, -1) {
		for _, name := range strings.Split(string(l[1]), " and ") {
			if !bytes.Contains(copyright, []byte("\nLicense: "+name+"\n ")) {
				t.Errorf("copyright: no License: %s paragraph with its text", name)
			}
		}
	}
	license, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(license, []byte("Apache License\n                           Version 2.0, January 2004")) ||
		!bytes.Contains(license, []byte("END OF TERMS AND CONDITIONS")) {
		t.Errorf("LICENSE is not the Apache License 2.0")
	}
}

// escapeModulePath is the module cache's spelling of a module path: an
// upper-case letter becomes "!" and its lower case.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestVersionScheme: systemd/packaging/version.sh's Debian mapping.
func TestVersionScheme(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]string{
		"v1.2.0":                   "1.2.0",
		"v1.2.0-rc1":               "1.2.0~rc1",
		"v1.2.0-3-gabc1234":        "1.2.0+3.gabc1234",
		"v1.2.0-3-gabc1234-dirty":  "1.2.0+3.gabc1234.dirty",
		"v1.2.0-rc1-3-gabc1234":    "1.2.0~rc1+3.gabc1234",
		"v1.2.0-dirty":             "1.2.0+dirty",
		"v0.0.0-79-g42dd848":       "0.0.0+79.g42dd848",
		"v0.0.0-79-g42dd848-dirty": "0.0.0+79.g42dd848.dirty",
		"v0.0.0-unknown":           "0.0.0~unknown",
	} {
		if got := debVersion(t, v); got != want {
			t.Errorf("version.sh --deb %s = %q, want %q", v, got, want)
		}
	}
	// The dist test's check of the README's examples against the tag.
	readme := "sudo apt install ./sensor-agent_1.2.0~rc1_armhf.deb\ntar xzf sensor-agent_1.2.0-rc1_linux_armv6.tar.gz\n" +
		"cd sensor-agent_1.2.0-rc1_linux_armv6\nmsg=started version=v1.2.0-rc1 device=pi\n"
	deb := func(v string) string { return debVersion(t, v) }
	if problems, n := readmeVersionProblems(readme, "v1.2.0-rc1", deb); len(problems) > 0 || n != 4 {
		t.Errorf("README against its tag: %d checked, problems %q", n, problems)
	}
	if problems, _ := readmeVersionProblems(readme, "v1.2.0", deb); len(problems) != 4 {
		t.Errorf("README against another tag: problems %q, want 4", problems)
	}
	out, err := exec.Command("sh", "../../systemd/packaging/version.sh").Output()
	if err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(string(out)); !regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.]+)*$`).MatchString(v) {
		t.Errorf("version.sh printed %q", v)
	}
}

// debVersion is version.sh's Debian form of v.
func debVersion(t *testing.T, v string) string {
	t.Helper()
	out, err := exec.Command("sh", "../../systemd/packaging/version.sh", "--deb", v).Output()
	if err != nil {
		t.Fatalf("version.sh --deb %s: %v", v, err)
	}
	return strings.TrimSpace(string(out))
}
