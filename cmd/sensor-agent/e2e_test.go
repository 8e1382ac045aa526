package main

// End-to-end tests: TestMain builds the real binary once and the tests run
// it as a separate process against the AWS IoT emulator (publisher/iotemu)
// started in the test process, over loopback with mutual TLS.
//
// Nothing here sleeps to wait: tests wait for the emulator to receive
// messages (Server.Wait), for a line on the child's output, or for the
// child to exit, always under a per-test deadline.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
	"github.com/sensor-agent/sensor-agent/sensors"
)

// binPath is the sensor-agent binary built by TestMain.
var binPath string

// The version and commit stamped into the binary the way the Makefile does.
const (
	e2eVersion = "v0.0.0-e2e"
	e2eCommit  = "e2e0c0ffee42"
)

// e2eTimeout bounds each test, so a hung child fails the test instead of
// the whole run.
const e2eTimeout = 45 * time.Second

func TestMain(m *testing.M) {
	os.Exit(e2eMain(m))
}

func e2eMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sensor-agent-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "sensor-agent")
	goTool, err := findGo()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot build the binary:", err)
		return 1
	}
	args := []string{"build", "-o", binPath,
		"-ldflags", "-X main.version=" + e2eVersion + " -X main.commit=" + e2eCommit}
	if raceEnabled() {
		// The child runs under the race detector too; see checkOutput.
		args = append(args, "-race")
	}
	args = append(args, ".")
	cmd := exec.Command(goTool, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAILED TO BUILD THE BINARY: %s %s: %v\n%s", goTool, strings.Join(args, " "), err, out.Bytes())
		return 1
	}
	return m.Run()
}

// findGo returns the go command of the toolchain running the tests: go
// test puts its GOROOT/bin first on PATH.
func findGo() (string, error) {
	return exec.LookPath("go")
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// ---- running the binary ----

// notifyBuffer is a bytes.Buffer safe for concurrent use that lets a reader
// wait for more output.
type notifyBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newNotifyBuffer() *notifyBuffer { return &notifyBuffer{changed: make(chan struct{})} }

func (b *notifyBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

func (b *notifyBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}

func (b *notifyBuffer) String() string {
	s, _ := b.snapshot()
	return s
}

// proc is a running sensor-agent.
type proc struct {
	t              *testing.T
	args           []string
	cmd            *exec.Cmd
	stdout, stderr *notifyBuffer
	done           chan struct{} // closed when the process has exited
	exitedAt       time.Time
}

// result is how a finished sensor-agent ended.
type result struct {
	code           int // -1 when killed by a signal
	stdout, stderr string
}

// start starts the binary with args; stdin may be nil.
func start(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) *proc {
	t.Helper()
	return startEnv(t, ctx, stdin, nil, args...)
}

// startEnv is start with env ("NAME=value") added to the environment, in
// place of the variables of those names (any case) the tests run with.
func startEnv(t *testing.T, ctx context.Context, stdin io.Reader, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = t.TempDir()
	cmd.Stdin = stdin
	// Under journald the agent leaves out the time; keep the plain format.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		for _, e := range env {
			if n, _, _ := strings.Cut(e, "="); strings.EqualFold(n, name) {
				return true
			}
		}
		// RUNTIME_DIRECTORY would put every agent's status socket in one place.
		return strings.HasPrefix(kv, "JOURNAL_STREAM=") || strings.HasPrefix(kv, "GORACE=") || strings.HasPrefix(kv, "RUNTIME_DIRECTORY=")
	})
	cmd.Env = append(cmd.Env, env...)
	// A race-enabled binary otherwise sleeps 1s at exit, which would blur
	// the shutdown timings measured here.
	gorace := os.Getenv("GORACE")
	if !strings.Contains(gorace, "atexit_sleep_ms") {
		gorace = strings.TrimSpace(gorace + " atexit_sleep_ms=0")
	}
	cmd.Env = append(cmd.Env, "GORACE="+gorace)
	cmd.WaitDelay = 5 * time.Second
	p := &proc{t: t, args: args, cmd: cmd, stdout: newNotifyBuffer(), stderr: newNotifyBuffer(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sensor-agent %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		_ = cmd.Wait()
		p.exitedAt = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
			t.Logf("sensor-agent %s killed at the end of the test; stderr:\n%s", strings.Join(args, " "), p.stderr)
		}
	})
	return p
}

// wait waits for the process to exit and checks its output for races.
func (p *proc) wait() result {
	p.t.Helper()
	<-p.done
	r := result{code: p.cmd.ProcessState.ExitCode(), stdout: p.stdout.String(), stderr: p.stderr.String()}
	checkOutput(p.t, p.args, r)
	return r
}

// signal sends sig to the process.
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// shutdownDeadline is the agent's bound on its last send after SIGTERM
// (agent.Options.ShutdownTimeout's default); exitGrace is on top of it.
const (
	shutdownDeadline = 5 * time.Second
	exitGrace        = 3 * time.Second
)

// terminate sends SIGTERM and waits for the process to exit, failing the
// test if it takes longer than the shutdown deadline allows.
func (p *proc) terminate() result {
	p.t.Helper()
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	timer := time.NewTimer(shutdownDeadline + exitGrace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.t.Fatalf("sensor-agent %s still running %s after SIGTERM\nstderr:\n%s",
			strings.Join(p.args, " "), shutdownDeadline+exitGrace, p.stderr)
	}
	p.t.Logf("exited %s after SIGTERM", p.exitedAt.Sub(sent).Round(time.Millisecond))
	return p.wait()
}

// waitOutput waits until buf holds a line matching re and returns the
// submatches of the first such line. It fails the test when ctx ends or the
// process exits first.
func (p *proc) waitOutput(ctx context.Context, buf *notifyBuffer, re *regexp.Regexp) []string {
	p.t.Helper()
	for {
		s, changed := buf.snapshot()
		if m := re.FindStringSubmatch(s); m != nil {
			return m
		}
		select {
		case <-changed:
		case <-p.done:
			if m := re.FindStringSubmatch(buf.String()); m != nil {
				return m
			}
			p.t.Fatalf("sensor-agent %s exited (%v) before printing %q\nstdout:\n%s\nstderr:\n%s",
				strings.Join(p.args, " "), p.cmd.ProcessState, re, p.stdout, p.stderr)
		case <-ctx.Done():
			p.t.Fatalf("no %q from sensor-agent %s: %v\nstdout:\n%s\nstderr:\n%s",
				re, strings.Join(p.args, " "), ctx.Err(), p.stdout, p.stderr)
		}
	}
}

// sensorAgent runs the binary to completion.
func sensorAgent(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) result {
	t.Helper()
	return start(t, ctx, stdin, args...).wait()
}

// checkOutput fails the test if the child's race detector reported a race.
func checkOutput(t *testing.T, args []string, r result) {
	t.Helper()
	if strings.Contains(r.stderr, "WARNING: DATA RACE") {
		t.Errorf("sensor-agent %s: data race in the binary:\n%s", strings.Join(args, " "), r.stderr)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), e2eTimeout)
	t.Cleanup(cancel)
	return ctx
}

// ---- the emulator and the config ----

// startEmulator starts the emulator with a PKI written to a temp dir.
func startEmulator(t *testing.T, opts iotemu.Options) (*iotemu.Server, *iotemu.PKI) {
	t.Helper()
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.PKI = pki
	srv, err := iotemu.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, pki
}

// agentConfig is what the tests vary in the agent's YAML file.
type agentConfig struct {
	device        string
	stateDir      string // "" = a new temp dir
	addr          string // the emulator listener, host:port
	alpn          string
	pki           *iotemu.PKI
	format        string
	maxReadings   int
	flushInterval string
	sensors       string // the sensors list, YAML, indented by two spaces
	keyFile       string // "" = the PKI's device key
	certFile      string // "" = the PKI's device certificate
	extra         string // more top-level YAML (e.g. a spool section)
	health        bool   // publish health readings (off: the counts below are of measurements)
	logLevel      string // "" = info; debug adds a "stored" line per group (see ledger)
	publishExtra  string // more keys of the publish section, indented by two spaces
}

// write writes the config to a temp dir and returns its path.
func (c agentConfig) write(t *testing.T) string {
	t.Helper()
	if c.stateDir == "" {
		c.stateDir = filepath.Join(t.TempDir(), "state")
	}
	_, port, err := net.SplitHostPort(c.addr)
	if err != nil {
		t.Fatalf("emulator address %q: %v", c.addr, err)
	}
	q := strconv.Quote
	if c.keyFile == "" {
		c.keyFile = c.pki.Path(iotemu.DeviceKeyFile)
	}
	if c.logLevel == "" {
		c.logLevel = "info"
	}
	if c.certFile == "" {
		c.certFile = c.pki.Path(iotemu.DeviceCertFile)
	}
	yaml := fmt.Sprintf(`device_id: %s
state_dir: %s
log_level: %s
endpoint:
  host: localhost
  port: %s
  alpn: %s
  cert_file: %s
  key_file: %s
  ca_file: %s
  timeout: 5s
publish:
  format: %s
  max_readings: %d
  flush_interval: %s
  health: %t
%ssensors:
%s%s`, c.device, q(c.stateDir), c.logLevel, port, c.alpn,
		q(c.certFile), q(c.keyFile), q(c.pki.Path(iotemu.CAFile)),
		c.format, c.maxReadings, c.flushInterval, c.health, c.publishExtra, c.sensors, c.extra)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// twoSimSensors: "air" takes 30 readings every 20ms (the sim defaults,
// temperature_c and humidity_pct), "door" 12 every 50ms (level): 42 in all.
const twoSimSensors = `  - name: air
    driver: sim
    interval: 20ms
    count: 30
  - name: door
    driver: sim
    interval: 50ms
    count: 12
    waveform: square
    period: 4
    values: [level]
`

// simOpts returns the options the agent builds for one of twoSimSensors,
// to predict its values with sensors.SimValues.
func simOpts(t *testing.T, sensor string) *sensors.SimOpts {
	o := sensors.DefaultSimOpts
	switch sensor {
	case "air":
		o.Count = 30
	case "door":
		o.Count, o.Waveform, o.Period, o.Values = 12, "square", 4, []string{sensors.Level}
	default:
		t.Fatalf("unknown sensor %q", sensor)
	}
	return &o
}

// ---- what arrived ----

// wireReading is one reading as published. Device is only in the single
// format's messages.
type wireReading struct {
	Device      string             `json:"device"`
	Incarnation string             `json:"incarnation"`
	Volatile    bool               `json:"volatile"` // numbered while the disk could not be written
	Type        string             `json:"type"`
	Error       string             `json:"error"`
	Seq         uint64             `json:"seq"`
	Sensor      string             `json:"sensor"`
	Time        string             `json:"time"`
	ClockSynced *bool              `json:"clock_synced"` // false before the clock is synchronised, else absent
	Values      map[string]float64 `json:"values"`
}

// batchReading is a reading inside a batch: no device field allowed.
type batchReading struct {
	Seq         uint64             `json:"seq"`
	Sensor      string             `json:"sensor"`
	Type        string             `json:"type"` // "health" or absent
	Time        string             `json:"time"`
	ClockSynced *bool              `json:"clock_synced"` // false before the clock is synchronised, else absent
	Values      map[string]float64 `json:"values"`
	Error       string             `json:"error"`
	LastSuccess string             `json:"last_success"` // on health readings
}

type wireBatch struct {
	Device      string            `json:"device"`
	Incarnation string            `json:"incarnation"`
	Volatile    bool              `json:"volatile"`
	SentAt      string            `json:"sent_at"`
	Dropped     []json.RawMessage `json:"dropped"`
	Readings    []batchReading    `json:"readings"`
}

// received is one reading with the index of the message it came in.
type received struct {
	wireReading
	msg int
}

// timeRE is RFC 3339 in UTC with exactly three fractional digits.
var timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// checkTime checks a timestamp's format and that it lies in [from, to].
func checkTime(t *testing.T, what, s string, from, to time.Time) {
	t.Helper()
	if !timeRE.MatchString(s) {
		t.Errorf("%s %q: want UTC RFC 3339 with exactly 3 fractional digits", what, s)
		return
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Errorf("%s %q: %v", what, s, err)
		return
	}
	// Millisecond truncation may put a stamp just before from.
	if ts.Before(from.Add(-time.Millisecond)) || ts.After(to) {
		t.Errorf("%s %s is outside the run (%s .. %s)", what, s, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	}
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// decodeMessages checks every message's shape, topic and wire details and
// returns the readings in arrival order.
func decodeMessages(t *testing.T, msgs []iotemu.Message, device, format string, maxReadings int, from, to time.Time) []received {
	t.Helper()
	var out []received
	for i, m := range msgs {
		prefix := "sensors/" + device + "/"
		if !strings.HasPrefix(m.Topic, prefix) {
			t.Errorf("message %d: topic %q does not start with %q", i, m.Topic, prefix)
		}
		// The topic travels as one percent-encoded path segment.
		if want := "/topics/" + strings.ReplaceAll(m.Topic, "/", "%2F"); m.RawPath != want {
			t.Errorf("message %d: request path %q, want %q", i, m.RawPath, want)
		}
		if m.QoS != 1 {
			t.Errorf("message %d: qos %d, want the default 1", i, m.QoS)
		}
		var rs []wireReading
		switch format {
		case "batch":
			var b wireBatch
			if err := decodeStrict(m.Payload, &b); err != nil {
				t.Errorf("message %d: not a batch envelope: %v\n%s", i, err, m.Payload)
				continue
			}
			if b.Device != device {
				t.Errorf("message %d: device %q, want %q", i, b.Device, device)
			}
			checkTime(t, fmt.Sprintf("message %d: sent_at", i), b.SentAt, from, to)
			if n := len(b.Readings); n == 0 || n > maxReadings {
				t.Errorf("message %d: %d readings, want 1..%d (max_readings)", i, n, maxReadings)
			}
			for _, r := range b.Readings {
				rs = append(rs, wireReading{Seq: r.Seq, Sensor: r.Sensor, Time: r.Time, Values: r.Values})
			}
		case "single":
			var r wireReading
			if err := decodeStrict(m.Payload, &r); err != nil {
				t.Errorf("message %d: not a single reading: %v\n%s", i, err, m.Payload)
				continue
			}
			if r.Device != device {
				t.Errorf("message %d: device %q, want %q", i, r.Device, device)
			}
			rs = append(rs, r)
		}
		for _, r := range rs {
			if want := prefix + r.Sensor; m.Topic != want {
				t.Errorf("message %d: reading seq %d of sensor %q published on %q, want %q", i, r.Seq, r.Sensor, m.Topic, want)
			}
			checkTime(t, fmt.Sprintf("message %d: seq %d: time", i, r.Seq), r.Time, from, to)
			out = append(out, received{wireReading: r, msg: i})
		}
	}
	return out
}

// checkSeqs checks that exactly the seqs lo..hi arrived, each at least
// once (exactly once unless dupsOK), and returns the number of duplicates.
func checkSeqs(t *testing.T, rs []received, lo, hi uint64, dupsOK bool) (dups int) {
	t.Helper()
	inMsgs := map[uint64][]int{} // seq → the messages it came in
	for _, r := range rs {
		inMsgs[r.Seq] = append(inMsgs[r.Seq], r.msg)
	}
	var missing []uint64
	for s := lo; s <= hi; s++ {
		switch c := len(inMsgs[s]); {
		case c == 0:
			missing = append(missing, s)
		case c > 1 && !dupsOK:
			t.Errorf("seq %d arrived %d times (messages %v), want once", s, c, inMsgs[s])
		case c > 1:
			t.Logf("seq %d arrived %d times (messages %v)", s, c, inMsgs[s])
		}
		dups += max(len(inMsgs[s])-1, 0)
	}
	if len(missing) > 0 {
		t.Errorf("seqs never delivered: %v", missing)
	}
	for _, s := range slices.Sorted(maps.Keys(inMsgs)) {
		if s < lo || s > hi {
			t.Errorf("unexpected seq %d (want %d..%d)", s, lo, hi)
		}
	}
	return dups
}

// checkSimValues checks that each sensor's readings, in seq order, carry
// the sim driver's values for reading 0, 1, 2, ... and that each sensor's
// readings arrived in seq order.
func checkSimValues(t *testing.T, rs []received, wantCount map[string]int) {
	t.Helper()
	bySensor := map[string][]received{}
	for _, r := range rs {
		bySensor[r.Sensor] = append(bySensor[r.Sensor], r)
	}
	for name, want := range wantCount {
		got := bySensor[name]
		if len(got) != want {
			t.Errorf("sensor %s: %d readings arrived, want %d", name, len(got), want)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq <= got[i-1].Seq {
				t.Errorf("sensor %s: seq %d arrived after seq %d", name, got[i].Seq, got[i-1].Seq)
			}
			if got[i].Time < got[i-1].Time {
				t.Errorf("sensor %s: time %s (seq %d) before %s (seq %d)", name, got[i].Time, got[i].Seq, got[i-1].Time, got[i-1].Seq)
			}
		}
		o := simOpts(t, name)
		for n, r := range got {
			if want := sensors.SimValues(o, n); !maps.Equal(map[string]float64(want), r.Values) {
				t.Errorf("sensor %s: reading %d (seq %d) values %v, want %v", name, n, r.Seq, r.Values, want)
			}
		}
	}
	for name := range bySensor {
		if _, ok := wantCount[name]; !ok {
			t.Errorf("readings from unconfigured sensor %q", name)
		}
	}
}

// statusRE matches the agent's status log line.
var statusRE = regexp.MustCompile(`msg=status taken=(\d+) published=(\d+) pending=(\d+)`)

// lastStatus returns taken and published from the last status line.
func lastStatus(t *testing.T, stderr string) (taken, published int) {
	t.Helper()
	all := statusRE.FindAllStringSubmatch(stderr, -1)
	if len(all) == 0 {
		t.Fatalf("no status line in stderr:\n%s", stderr)
	}
	m := all[len(all)-1]
	taken, _ = strconv.Atoi(m[1])
	published, _ = strconv.Atoi(m[2])
	return taken, published
}

// ---- run ----

// TestRunExitWhenIdle runs the agent to completion on two finite sim
// sensors and checks everything that reached the emulator.
func TestRunExitWhenIdle(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		listener string // iotemu.ListenerALPN or ListenerPlain
		alpn     string
		format   string
	}{
		{"443-style ALPN listener, batch", iotemu.ListenerALPN, "on", "batch"},
		{"8443-style listener without ALPN, batch", iotemu.ListenerPlain, "off", "batch"},
		{"single format", iotemu.ListenerALPN, "on", "single"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			srv, pki := startEmulator(t, iotemu.Options{})
			addr := srv.ALPNAddr()
			if tc.listener == iotemu.ListenerPlain {
				addr = srv.PlainAddr()
			}
			const maxReadings = 7
			cfg := agentConfig{device: "pi-e2e", addr: addr, alpn: tc.alpn, pki: pki, format: tc.format,
				maxReadings: maxReadings, flushInterval: "200ms", sensors: twoSimSensors}.write(t)

			from := time.Now()
			r := sensorAgent(t, ctx, nil, "run", "-config", cfg, "-exit-when-idle")
			to := time.Now()
			if r.code != 0 {
				t.Fatalf("run -exit-when-idle: exit %d, want 0\nstderr:\n%s", r.code, r.stderr)
			}
			msgs := srv.Messages()
			rs := decodeMessages(t, msgs, "pi-e2e", tc.format, maxReadings, from, to)
			checkSeqs(t, rs, 1, 42, false)
			checkSimValues(t, rs, map[string]int{"air": 30, "door": 12})
			if tc.format == "single" && len(msgs) != 42 {
				t.Errorf("format single: %d messages, want one per reading (42)", len(msgs))
			}
			if tc.format == "batch" && len(msgs) >= 42 {
				t.Errorf("format batch: %d messages for 42 readings: nothing was batched", len(msgs))
			}
			for i, m := range msgs {
				if m.Listener != tc.listener {
					t.Errorf("message %d arrived on the %s listener, want %s", i, m.Listener, tc.listener)
				}
				if wantALPN := map[string]string{"on": publisher.ALPNProtocol, "off": ""}[tc.alpn]; m.ALPN != wantALPN {
					t.Errorf("message %d: negotiated ALPN %q, want %q", i, m.ALPN, wantALPN)
				}
				if m.ClientCN == "" {
					t.Errorf("message %d: no client certificate", i)
				}
			}
			// One kept-alive connection for every publish.
			if n := srv.Handshakes(); n != 1 {
				t.Errorf("%d TLS handshakes for %d messages, want 1 (keep-alive)", n, len(msgs))
			}
			if n := srv.Requests(); n != len(msgs) {
				t.Errorf("%d requests for %d messages, want one each", n, len(msgs))
			}
			if taken, published := lastStatus(t, r.stderr); taken != 42 || published != 42 {
				t.Errorf("final status taken=%d published=%d, want 42 and 42", taken, published)
			}
			t.Logf("%d messages, %d TLS handshake(s)", len(msgs), srv.Handshakes())
		})
	}
}

// TestRunALPNOffOn443Style points the agent without ALPN at the 443-style
// listener: every publish gets 403 Missing Authentication Token, the agent
// says what to do, keeps the data, and on SIGTERM reports it unsent.
func TestRunALPNOffOn443Style(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{PlainAddr: iotemu.Off})
	cfg := agentConfig{device: "pi-e2e", addr: srv.ALPNAddr(), alpn: "off", pki: pki, format: "batch",
		maxReadings: 5, flushInterval: "100ms", sensors: `  - name: air
    driver: sim
    interval: 20ms
`}.write(t)
	p := start(t, ctx, nil, "run", "-config", cfg)
	line := p.waitOutput(ctx, p.stderr, regexp.MustCompile(`.*Missing Authentication Token.*`))[0]
	for _, want := range []string{"level=ERROR", "403", "data is kept", publisher.ALPNProtocol, "alpn on", "8443"} {
		if !strings.Contains(line, want) {
			t.Errorf("the 403 log line lacks %q:\n%s", want, line)
		}
	}
	r := p.terminate()
	if r.code != 0 {
		t.Errorf("exit %d; want 0: unpublished readings stay in the spool\nstderr:\n%s", r.code, r.stderr)
	}
	kept := regexp.MustCompile(`readings not yet published: they remain in the spool.* readings=(\d+)`).FindStringSubmatch(r.stderr)
	if kept == nil {
		t.Fatalf("stderr does not report the readings left in the spool:\n%s", r.stderr)
	}
	taken, published := lastStatus(t, r.stderr)
	if taken == 0 || published != 0 || kept[1] != strconv.Itoa(taken) {
		t.Errorf("final status taken=%d published=%d and %s reported kept: want all taken kept", taken, published, kept[1])
	}
	// They are on disk: `spool export` lists every one, seq 1..taken.
	exp := start(t, ctx, nil, "spool", "export", "-config", cfg).wait()
	if exp.code != 0 {
		t.Fatalf("spool export: exit %d\n%s", exp.code, exp.stderr)
	}
	lines := strings.Split(strings.TrimSpace(exp.stdout), "\n")
	if len(lines) != taken {
		t.Errorf("spool export lists %d readings, want %d", len(lines), taken)
	}
	for i, l := range lines {
		var rd wireReading
		if err := json.Unmarshal([]byte(l), &rd); err != nil || rd.Seq != uint64(i+1) {
			t.Errorf("export line %d: %q (%v): want seq %d", i, l, err, i+1)
		}
	}
	// `spool stats` counts them; `spool verify` finds every record sound.
	st := start(t, ctx, nil, "spool", "stats", "-json", "-config", cfg).wait()
	var stats struct {
		Pending  int    `json:"pending_readings"`
		Batches  int    `json:"pending_batches"`
		Oldest   uint64 `json:"oldest_seq"`
		Segments int    `json:"segments"`
	}
	if err := json.Unmarshal([]byte(st.stdout), &stats); err != nil || st.code != 0 {
		t.Fatalf("spool stats -json: exit %d, %v\n%s%s", st.code, err, st.stdout, st.stderr)
	}
	if stats.Pending != taken || stats.Oldest != 1 || stats.Segments < 1 || stats.Batches < (taken+4)/5 {
		t.Errorf("spool stats %+v; want %d pending from seq 1 in at least %d messages of 5", stats, taken, (taken+4)/5)
	}
	if v := start(t, ctx, nil, "spool", "verify", "-config", cfg).wait(); v.code != 0 || !strings.Contains(v.stdout, "ok") {
		t.Errorf("spool verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("the emulator accepted %d messages, want none", n)
	}
	// 403 backs off for a minute or more, so no hammering: the refused
	// publish, then at most one last attempt at shutdown (none when the
	// signal lands between the refusal and the agent's check for it: the
	// refused publish then counts as the last attempt).
	if n := srv.Requests(); n < 1 || n > 2 {
		t.Errorf("%d requests reached the emulator, want 1 or 2 (the refused publish, and maybe a last attempt at shutdown)\nstderr:\n%s", n, r.stderr)
	}
	for i, h := range srv.ClientHellos() {
		if len(h.ALPN) != 0 {
			t.Errorf("handshake %d offered ALPN %q with alpn: off", i, h.ALPN)
		}
	}
}

// TestRunSeqPersistsAcrossRestarts runs the agent twice on one state_dir.
func TestRunSeqPersistsAcrossRestarts(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg := agentConfig{device: "pi-e2e", stateDir: stateDir, addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
		maxReadings: 7, flushInterval: "200ms", sensors: twoSimSensors}.write(t)

	var runs [2][]received
	for i := range runs {
		before := len(srv.Messages())
		from := time.Now()
		r := sensorAgent(t, ctx, nil, "run", "-config", cfg, "-exit-when-idle")
		if r.code != 0 {
			t.Fatalf("run %d: exit %d\nstderr:\n%s", i+1, r.code, r.stderr)
		}
		runs[i] = decodeMessages(t, srv.Messages()[before:], "pi-e2e", "batch", 7, from, time.Now())
		if len(runs[i]) != 42 {
			t.Fatalf("run %d: %d readings arrived, want 42", i+1, len(runs[i]))
		}
	}
	seqs := func(rs []received) []uint64 {
		out := make([]uint64, len(rs))
		for i, r := range rs {
			out[i] = r.Seq
		}
		slices.Sort(out)
		return out
	}
	first, second := seqs(runs[0]), seqs(runs[1])
	if first[0] != 1 || first[len(first)-1] != 42 {
		t.Errorf("first run: seqs %d..%d, want 1..42", first[0], first[len(first)-1])
	}
	if second[0] <= first[len(first)-1] {
		t.Errorf("second run starts at seq %d, not after the first run's last seq %d: seq numbers repeat across restarts", second[0], first[len(first)-1])
	}
	if u := slices.Compact(slices.Clone(second)); len(u) != 42 {
		t.Errorf("second run repeated seqs: %v", second)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "seq")); err != nil {
		t.Errorf("state_dir has no seq file: %v", err)
	}
	t.Logf("first run seqs %d..%d, second run %d..%d", first[0], first[len(first)-1], second[0], second[len(second)-1])
}

// TestRunSurvivesEmulatorFaults: two 503s and a lost reply lose nothing.
func TestRunSurvivesEmulatorFaults(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	srv.FailNext(503, 2)
	srv.LoseReplies(1)
	cfg := agentConfig{device: "pi-e2e", addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
		maxReadings: 7, flushInterval: "200ms", sensors: twoSimSensors}.write(t)
	from := time.Now()
	r := sensorAgent(t, ctx, nil, "run", "-config", cfg, "-exit-when-idle")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\nstderr:\n%s", r.code, r.stderr)
	}
	msgs := srv.Messages()
	rs := decodeMessages(t, msgs, "pi-e2e", "batch", 7, from, time.Now())
	dups := checkSeqs(t, rs, 1, 42, true)
	// The first accepted message lost its reply, so the agent sent the
	// same bytes again, and nothing else twice.
	if len(msgs) < 2 || msgs[0].Topic != msgs[1].Topic || !bytes.Equal(msgs[0].Payload, msgs[1].Payload) {
		t.Fatalf("the message whose reply was lost was not resent as it was")
	}
	if n := len(decodeMessages(t, msgs[:1], "pi-e2e", "batch", 7, from, time.Now())); dups != n {
		t.Errorf("%d duplicate readings, want the %d of the message whose reply was lost", dups, n)
	}
	if n := srv.Requests(); n != len(msgs)+2 {
		t.Errorf("%d requests for %d messages, want 2 more (the 503s)", n, len(msgs))
	}
	if n := strings.Count(r.stderr, "503 ServiceUnavailableException"); n != 2 {
		t.Errorf("stderr reports %d 503 failures, want the two injected ones:\n%s", n, r.stderr)
	}
	if !strings.Contains(r.stderr, "publish failed; will retry") {
		t.Errorf("stderr has no retry warning:\n%s", r.stderr)
	}
	if taken, published := lastStatus(t, r.stderr); taken != 42 || published != 42 {
		t.Errorf("final status taken=%d published=%d, want 42 and 42", taken, published)
	}
	t.Logf("%d messages, %d requests, %d duplicate readings, %d TLS handshakes", len(msgs), srv.Requests(), dups, srv.Handshakes())
}

// TestRunSIGTERMFlushes stops an endless agent with SIGTERM: it flushes
// what it holds, exits 0 within the shutdown deadline, and everything it
// took arrived.
func TestRunSIGTERMFlushes(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	// flush_interval is long: what is pending at SIGTERM is only sent by
	// the shutdown flush.
	cfg := agentConfig{device: "pi-e2e", addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
		maxReadings: 5, flushInterval: "1m", sensors: `  - name: air
    driver: sim
    interval: 10ms
  - name: door
    driver: sim
    interval: 15ms
    values: [level]
`}.write(t)
	from := time.Now()
	p := start(t, ctx, nil, "run", "-config", cfg)
	if _, err := srv.Wait(ctx, 2); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, p.stderr)
	}
	sent := time.Now()
	r := p.terminate()
	if r.code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0\nstderr:\n%s", r.code, r.stderr)
	}
	taken, published := lastStatus(t, r.stderr)
	if taken == 0 || published != taken {
		t.Errorf("final status taken=%d published=%d, want all taken published", taken, published)
	}
	msgs := srv.Messages()
	rs := decodeMessages(t, msgs, "pi-e2e", "batch", 5, from, time.Now())
	late := 0
	for _, m := range msgs {
		if m.Received.After(sent) {
			late++
		}
	}
	t.Logf("%d readings in %d messages, %d of them sent after SIGTERM", len(rs), len(msgs), late)
	if len(rs) != taken {
		t.Errorf("%d readings arrived, the agent says it took %d", len(rs), taken)
	}
	checkSeqs(t, rs, 1, uint64(taken), false)
	if !strings.Contains(r.stderr, `msg="sensor-agent stopped"`) {
		t.Errorf("no clean stop in stderr:\n%s", r.stderr)
	}
}

// ---- check ----

func TestCheck(t *testing.T) {
	t.Parallel()
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A fake sysfs with one thermal zone.
	sysfs := t.TempDir()
	zone := filepath.Join(sysfs, "class", "thermal", "thermal_zone0")
	if err := os.MkdirAll(zone, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(zone, "temp"), []byte("48312\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := iotemu.NewUntrustedClient(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		sensors string
		keyFile string
		code    int
		stdout  []*regexp.Regexp // each must match stdout
		stderr  []string         // each must be in stderr
	}{
		{
			name:    "valid sim sensors",
			sensors: twoSimSensors,
			stdout: []*regexp.Regexp{
				regexp.MustCompile(`(?m)^config .+config\.yaml: ok \(device pi-e2e, 2 sensors\)$`),
				regexp.MustCompile(`(?m)^endpoint localhost:\d+: certificate and key ok$`),
				// Reading 0 of a sine wave: the midpoints.
				regexp.MustCompile(`(?m)^sensor air \(sim\): humidity_pct=50 temperature_c=20$`),
				regexp.MustCompile(`(?m)^sensor door \(sim\): level=1$`),
			},
		},
		{
			name: "sim sensor that fails to open",
			sensors: `  - name: flaky
    driver: sim
    fail_open: 5
`,
			code:   1,
			stdout: []*regexp.Regexp{regexp.MustCompile(`(?m)^sensor flaky \(sim\): FAIL open: .*fail_open`)},
			stderr: []string{"sensor-agent check: 1 problem(s) found"},
		},
		{
			name: "cpu_thermal zone that does not exist",
			sensors: `  - name: soc
    driver: cpu_thermal
    zone: thermal_zone7
`,
			code: 1,
			stdout: []*regexp.Regexp{
				regexp.MustCompile(`(?m)^sensor soc \(cpu_thermal\): FAIL open: .*thermal_zone7.*no such zone \(present: thermal_zone0\)`),
			},
			stderr: []string{"sensor-agent check: 1 problem(s) found"},
		},
		{
			name:    "key that does not match the certificate",
			sensors: twoSimSensors,
			keyFile: otherKey,
			code:    1,
			stdout: []*regexp.Regexp{
				regexp.MustCompile(`(?m)^endpoint: FAIL client key .+ does not match certificate .+$`),
				// The sensors are still read.
				regexp.MustCompile(`(?m)^sensor air \(sim\): humidity_pct=50 temperature_c=20$`),
			},
			stderr: []string{"sensor-agent check: 1 problem(s) found"},
		},
		{
			name: "cpu_thermal on a fake sysfs",
			sensors: `  - name: soc
    driver: cpu_thermal
`,
			// The driver rounds to 0.01 °C (sensors.round2): 48312 m°C
			// reads as 48.31.
			stdout: []*regexp.Regexp{regexp.MustCompile(`(?m)^sensor soc \(cpu_thermal\): temperature_c=48\.31$`)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			// check never dials, so any port will do.
			cfg := agentConfig{device: "pi-e2e", addr: "localhost:1", alpn: "on", pki: pki, format: "batch",
				maxReadings: 7, flushInterval: "1s", sensors: tc.sensors, keyFile: tc.keyFile}.write(t)
			r := sensorAgent(t, ctx, nil, "check", "-config", cfg, "-sysfs", sysfs)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d", r.code, tc.code)
			}
			for _, re := range tc.stdout {
				if !re.MatchString(r.stdout) {
					t.Errorf("stdout does not match %q", re)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q", s)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}
}

// ---- bad config ----

func TestRunBadConfig(t *testing.T) {
	t.Parallel()
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, key := strconv.Quote(pki.Path(iotemu.DeviceCertFile)), strconv.Quote(pki.Path(iotemu.DeviceKeyFile))
	for _, tc := range []struct {
		name string
		yaml string
		want []string // each in stderr, after "<file>:" ; the first names the line
	}{
		{
			name: "unknown key",
			yaml: `device_id: pi-e2e
state_dir: STATE
endpoint:
  host: localhost
  cert_file: CERT
  key_file: KEY
sensors:
  - name: air
    driver: sim
    intervall: 1s
`,
			want: []string{`:10: sensors[0].intervall: unknown key`, "keys for driver sim: ", " interval, "},
		},
		{
			name: "missing endpoint.host",
			yaml: `device_id: pi-e2e
state_dir: STATE
endpoint:
  port: 8443
  cert_file: CERT
  key_file: KEY
sensors:
  - name: air
    driver: sim
`,
			want: []string{`:3: endpoint.host: missing required key`},
		},
		{
			name: "wrong type",
			yaml: `device_id: pi-e2e
state_dir: STATE
endpoint:
  host: localhost
  port: fourfourthree
  cert_file: CERT
  key_file: KEY
sensors:
  - name: air
    driver: sim
`,
			want: []string{`:5: endpoint.port: wrong type`, "into int"},
		},
		{
			name: "duration without unit",
			yaml: `device_id: pi-e2e
state_dir: STATE
endpoint:
  host: localhost
  cert_file: CERT
  key_file: KEY
sensors:
  - name: air
    driver: sim
    interval: 30
`,
			want: []string{`:10: sensors[0].interval: duration "30" has no unit`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			srv, _ := startEmulator(t, iotemu.Options{})
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			y := strings.NewReplacer("STATE", strconv.Quote(state), "CERT", cert, "KEY", key).Replace(tc.yaml)
			path := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			r := sensorAgent(t, ctx, nil, "run", "-config", path, "-exit-when-idle")
			if r.code == 0 {
				t.Errorf("exit 0 for a bad config")
			}
			for i, w := range tc.want {
				if i == 0 {
					w = path + w
				}
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout: %q, want nothing", r.stdout)
			}
			// Nothing started: no state written, nothing sent.
			if _, err := os.Stat(state); err == nil {
				t.Errorf("state_dir was created for a config that does not load")
			}
			if n := srv.Requests(); n != 0 {
				t.Errorf("%d requests reached the emulator", n)
			}
		})
	}
}

// ---- publish ----

func TestPublish(t *testing.T) {
	t.Parallel()
	traceRE := regexp.MustCompile(`^published (\d+) bytes to (\S+): 200 OK traceId (\S+)\n$`)
	for _, tc := range []struct {
		name    string
		noCfg   bool     // -host, -port, -cert, -key, -ca instead of -config
		args    []string // after -config CFG
		stdin   string
		topic   string
		payload string
	}{
		{"argument", false, []string{"-topic", "a/b", `{"x":1}`}, "", "a/b", `{"x":1}`},
		{"stdin with -", false, []string{"-topic", "a/b", "-"}, "{\"y\":[1,2]}\n", "a/b", `{"y":[1,2]}`},
		{"stdin without argument, qos 0", false, []string{"-topic", "sensors/pi-e2e/manual", "-qos", "0"}, "hello\n", "sensors/pi-e2e/manual", "hello"},
		{"-host instead of a config", true, []string{"-topic", "a/b", `{"x":1}`}, "", "a/b", `{"x":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			srv, pki := startEmulator(t, iotemu.Options{})
			cfg := agentConfig{device: "pi-e2e", addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
				maxReadings: 7, flushInterval: "1s", sensors: twoSimSensors}.write(t)
			args := []string{"publish", "-config", cfg}
			if tc.noCfg {
				_, port, _ := net.SplitHostPort(srv.ALPNAddr())
				args = []string{"publish", "-host", "localhost", "-port", port, "-alpn", "on",
					"-cert", pki.Path(iotemu.DeviceCertFile), "-key", pki.Path(iotemu.DeviceKeyFile), "-ca", pki.Path(iotemu.CAFile)}
			}
			r := sensorAgent(t, ctx, strings.NewReader(tc.stdin), append(args, tc.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages arrived, want 1", len(msgs))
			}
			m := msgs[0]
			if m.Topic != tc.topic || string(m.Payload) != tc.payload {
				t.Errorf("got %q on %q, want %q on %q", m.Payload, m.Topic, tc.payload, tc.topic)
			}
			wantQoS := 1
			if slices.Contains(tc.args, "-qos") {
				wantQoS = 0
			}
			if m.QoS != wantQoS {
				t.Errorf("qos %d, want %d", m.QoS, wantQoS)
			}
			if m.ALPN != publisher.ALPNProtocol {
				t.Errorf("negotiated ALPN %q, want %q", m.ALPN, publisher.ALPNProtocol)
			}
			sub := traceRE.FindStringSubmatch(r.stdout)
			if sub == nil {
				t.Fatalf("stdout %q does not match %q", r.stdout, traceRE)
			}
			if sub[1] != strconv.Itoa(len(tc.payload)) || sub[2] != tc.topic || sub[3] != m.RequestID {
				t.Errorf("stdout %q: want %d bytes to %s, traceId %s", r.stdout, len(tc.payload), tc.topic, m.RequestID)
			}
		})
	}

	t.Run("invalid topic", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv, pki := startEmulator(t, iotemu.Options{})
		cfg := agentConfig{device: "pi-e2e", addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
			maxReadings: 7, flushInterval: "1s", sensors: twoSimSensors}.write(t)
		r := sensorAgent(t, ctx, nil, "publish", "-config", cfg, "-topic", "sensors/#", `{"x":1}`)
		if r.code == 0 {
			t.Errorf("exit 0 for topic sensors/#\nstdout:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "sensors/#") || !strings.Contains(r.stderr, "(permanent)") {
			t.Errorf("stderr does not name the topic and the error kind:\n%s", r.stderr)
		}
		if n := srv.Requests(); n != 0 {
			t.Errorf("%d requests reached the emulator, want none", n)
		}
		if n := srv.Connections(); n != 0 {
			t.Errorf("%d connections to the emulator, want none", n)
		}
	})
}

// ---- version ----

func TestVersion(t *testing.T) {
	t.Parallel()
	r := sensorAgent(t, testContext(t), nil, "version")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	want := fmt.Sprintf("sensor-agent %s commit %s %s %s/%s\n", e2eVersion, e2eCommit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if r.stdout != want {
		t.Errorf("version printed %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stdout, " go1.") {
		t.Errorf("no Go version in %q", r.stdout)
	}
}

// ---- emulate ----

// TestEmulate runs `emulate` as its own process and the agent's `publish`
// against it: two binaries talking over loopback.
func TestEmulate(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), "emu")
	record := filepath.Join(t.TempDir(), "record.jsonl")
	emu := start(t, ctx, nil, "emulate", "-dir", dir, "-alpn-listen", "127.0.0.1:0", "-plain-listen", "off", "-record", record)
	// The emulator logs the address the kernel chose.
	m := emu.waitOutput(ctx, emu.stderr, regexp.MustCompile(`msg="listening, 443-style[^"]*" addr=(\S+)`))
	addr := m[1]
	if _, port, _ := net.SplitHostPort(addr); port == "0" || port == "" {
		t.Fatalf("emulate reported %q, not the port it listens on", addr)
	}
	if strings.Contains(emu.stderr.String(), "8443-style") {
		t.Errorf("emulate started the 8443-style listener with -plain-listen off:\n%s", emu.stderr)
	}
	pki, err := iotemu.NewPKI(dir) // loads what emulate wrote
	if err != nil {
		t.Fatalf("emulate's PKI in %s: %v", dir, err)
	}
	cfg := agentConfig{device: "pi-e2e", addr: addr, alpn: "on", pki: pki, format: "batch",
		maxReadings: 7, flushInterval: "1s", sensors: twoSimSensors}.write(t)
	pub := sensorAgent(t, ctx, nil, "publish", "-config", cfg, "-topic", "sensors/pi-e2e/test", `{"hello": 1}`)
	if pub.code != 0 {
		t.Fatalf("publish: exit %d\nstderr:\n%s\nemulate stderr:\n%s", pub.code, pub.stderr, emu.stderr)
	}
	id := regexp.MustCompile(`traceId (\S+)`).FindStringSubmatch(pub.stdout)
	if id == nil {
		t.Fatalf("publish printed no traceId: %q", pub.stdout)
	}
	// emulate prints each message as it accepts it.
	emu.waitOutput(ctx, emu.stdout, regexp.MustCompile(`alpn +qos=1 sensors/pi-e2e/test 12B id=`+regexp.QuoteMeta(id[1])+` \{"hello":1\}`))

	emu.signal(os.Interrupt)
	r := emu.wait()
	if r.code != 0 {
		t.Errorf("emulate: exit %d after SIGINT, want 0\nstderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, `msg=stopping messages=1 tls_handshakes=1`) {
		t.Errorf("emulate did not log a clean stop with one message:\n%s", r.stderr)
	}

	// The record holds one line: the message the emulator accepted.
	data, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	var lines []iotemu.RecordLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var l iotemu.RecordLine
		if err := decodeStrict(sc.Bytes(), &l); err != nil {
			t.Fatalf("record line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 1 {
		t.Fatalf("record has %d lines, want 1:\n%s", len(lines), data)
	}
	l := lines[0]
	if l.Topic != "sensors/pi-e2e/test" || string(l.Payload) != `{"hello":1}` || l.QoS != 1 || l.RequestID != id[1] {
		t.Errorf("record line %+v (payload %s): want topic sensors/pi-e2e/test, payload {\"hello\":1}, qos 1, request id %s", l, l.Payload, id[1])
	}
	if l.Time.IsZero() {
		t.Errorf("record line has no time")
	}
}

// ---- demo ----

func TestDemo(t *testing.T) {
	t.Parallel()
	r := sensorAgent(t, testContext(t), nil, "demo", "-duration", "3s")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	lines := regexp.MustCompile(`(?m)^← sensors/demo-pi/(greenhouse|door) +(\d+) readings +seq (\d+)-(\d+) `).FindAllStringSubmatch(r.stdout, -1)
	if len(lines) == 0 {
		t.Errorf("no \"← sensors/demo-pi/\" message line:\n%s", r.stdout)
	}
	sum := regexp.MustCompile(`(?m)^demo: (\d+) messages with (\d+) readings arrived over (\d+) TLS connection\(s\)$`).FindStringSubmatch(r.stdout)
	if sum == nil {
		t.Fatalf("no final \"demo: N messages\" summary:\n%s", r.stdout)
	}
	msgs, _ := strconv.Atoi(sum[1])
	readings, _ := strconv.Atoi(sum[2])
	if msgs != len(lines) {
		t.Errorf("summary says %d messages, %d were printed:\n%s", msgs, len(lines), r.stdout)
	}
	total := 0
	for _, l := range lines {
		n, _ := strconv.Atoi(l[2])
		total += n
	}
	if readings != total {
		t.Errorf("summary says %d readings, the printed messages hold %d", readings, total)
	}
	if sum[3] != "1" {
		t.Errorf("%s TLS connections, want 1", sum[3])
	}
	if taken, published := lastStatus(t, r.stderr); published != readings || taken != published {
		t.Errorf("status taken=%d published=%d, but %d readings arrived", taken, published, readings)
	}
}
