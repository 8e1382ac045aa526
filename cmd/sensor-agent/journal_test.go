package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// devIno is f's "dev:ino", as systemd writes it in JOURNAL_STREAM.
func devIno(t *testing.T, f *os.File) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func envWith(k, v string) func(string) string {
	return func(name string) string {
		if name == k {
			return v
		}
		return ""
	}
}

// logAll logs one line at each level, through a WithAttrs logger too.
func logAll(w io.Writer, getenv func(string) string) {
	log := newLoggerEnv(w, "debug", getenv)
	log.Debug("d", "n", 1)
	log.Info("i")
	log.With("sensor", "air").Warn("w")
	log.WithGroup("g").Error("e", "err", "multi\nline")
}

// TestJournalPriorities: with JOURNAL_STREAM naming the stream (a file, a
// pipe) each line starts with its sd-daemon(3) priority and has no time;
// with JOURNAL_STREAM naming another stream, or on a writer that is not
// a file, the lines are as on a terminal.
func TestJournalPriorities(t *testing.T) {
	const want = "<7>level=DEBUG msg=d n=1\n" +
		"<6>level=INFO msg=i\n" +
		"<4>level=WARN msg=w sensor=air\n" +
		"<3>level=ERROR msg=e g.err=\"multi\\nline\"\n"
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	logAll(f, envWith("JOURNAL_STREAM", devIno(t, f)))
	if got, _ := os.ReadFile(f.Name()); string(got) != want {
		t.Errorf("file named by JOURNAL_STREAM: got\n%s\nwant\n%s", got, want)
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	logAll(w, envWith("JOURNAL_STREAM", devIno(t, w)))
	w.Close()
	if got, _ := io.ReadAll(r); string(got) != want {
		t.Errorf("pipe named by JOURNAL_STREAM: got\n%s\nwant\n%s", got, want)
	}

	var buf bytes.Buffer
	other, err := os.Create(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	logAll(other, envWith("JOURNAL_STREAM", devIno(t, f))) // inherited: stderr is elsewhere
	logAll(&buf, envWith("JOURNAL_STREAM", devIno(t, f)))
	got, _ := os.ReadFile(other.Name())
	for name, out := range map[string]string{"another file": string(got), "a buffer": buf.String()} {
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 4 {
			t.Errorf("%s: %d lines, want 4:\n%s", name, len(lines), out)
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, "time=") {
				t.Errorf("%s: %q, want a plain line with a time", name, l)
			}
		}
	}
}

// TestRunJournalPriorities runs the agent with stderr a file whose
// dev:ino is in JOURNAL_STREAM, as systemd starts it with the journal on
// stderr: every line has its priority. The spool's directory is under a
// file (an error: memory mode), one sensor fails every other read (a
// warning).
func TestRunJournalPriorities(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := agentConfig{device: "pi-journal", addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
		maxReadings: 50, flushInterval: "100ms", logLevel: "debug",
		sensors: "  - {name: flaky, driver: sim, interval: 20ms, count: 6, fail_every: 2}\n",
		extra:   fmt.Sprintf("spool:\n  dir: %q\n", filepath.Join(notDir, "spool"))}.write(t)
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := exec.CommandContext(ctx, binPath, "run", "-config", cfg, "-exit-when-idle")
	cmd.Env = append(os.Environ(), "JOURNAL_STREAM="+devIno(t, stderr), "RUNTIME_DIRECTORY=", "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(stderr.Name())
		t.Fatalf("run: %v\n%s", err, out)
	}
	out, err := os.ReadFile(stderr.Name())
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, cmd.Args, result{stderr: string(out)})
	prio := regexp.MustCompile(`^<(\d)>level=(\w+) msg=`)
	want := map[string]string{"DEBUG": "7", "INFO": "6", "WARN": "4", "ERROR": "3"}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		m := prio.FindStringSubmatch(l)
		if m == nil || want[m[2]] != m[1] || strings.Contains(l, "time=") {
			t.Errorf("line without its priority, or with a time: %q", l)
			continue
		}
		seen[m[2]] = true
	}
	for lv := range want {
		if !seen[lv] {
			t.Errorf("no %s line:\n%s", lv, out)
		}
	}
	for _, re := range []string{`(?m)^<3>level=ERROR msg="spool unavailable`, `(?m)^<4>level=WARN msg="sensor error" sensor=flaky`,
		`(?m)^<6>level=INFO msg="sensor-agent started"`, `(?m)^<7>level=DEBUG msg=stored`} {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("no line %s:\n%s", re, out)
		}
	}
}
