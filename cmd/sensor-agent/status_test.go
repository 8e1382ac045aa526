package main

// `sensor-agent status` against the real binary: a healthy agent, a
// failing sensor, the endpoint down, no agent at all; and its printing.

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// statusAgent is a running agent with its status socket in state_dir (no
// RUNTIME_DIRECTORY, as outside systemd).
type statusAgent struct {
	t        *testing.T
	ctx      context.Context
	cfg      string
	stateDir string
	p        *proc
}

func startStatusAgent(t *testing.T, ctx context.Context, srv *iotemu.Server, pki *iotemu.PKI, sensors string) *statusAgent {
	t.Helper()
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg := agentConfig{device: "pi-status", stateDir: stateDir, addr: srv.ALPNAddr(), alpn: "on", pki: pki,
		format: "batch", maxReadings: 50, flushInterval: "100ms", sensors: sensors, health: true}.write(t)
	p := startEnv(t, ctx, nil, []string{"RUNTIME_DIRECTORY="}, "run", "-config", cfg)
	p.waitOutput(ctx, p.stderr, regexp.MustCompile(`msg="status socket" socket=`))
	return &statusAgent{t: t, ctx: ctx, cfg: cfg, stateDir: stateDir, p: p}
}

// status runs `status -config` with RUNTIME_DIRECTORY at an empty
// directory, so a real /run/sensor-agent is never asked.
func runStatus(t *testing.T, ctx context.Context, cfg string, args ...string) result {
	t.Helper()
	env := []string{"RUNTIME_DIRECTORY=" + filepath.Join(t.TempDir(), "run")}
	return startEnv(t, ctx, nil, env, append([]string{"status", "-config", cfg}, args...)...).wait()
}

// until asks for the JSON status until ok says it shows what the test
// waits for, and returns it.
func (a *statusAgent) until(what string, ok func(statusReport) bool) statusReport {
	a.t.Helper()
	for {
		r := runStatus(a.t, a.ctx, a.cfg, "-json")
		var rep statusReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			a.t.Fatalf("status -json: exit %d, %v\nstdout:\n%s\nstderr:\n%s", r.code, err, r.stdout, r.stderr)
		}
		if ok(rep) {
			return rep
		}
		select {
		case <-a.ctx.Done():
			a.t.Fatalf("status never showed %s; last:\n%s\nagent's stderr:\n%s", what, r.stdout, a.p.stderr)
		case <-time.After(50 * time.Millisecond): // the agent's state moves by itself
		}
	}
}

func sensorByName(rep statusReport, name string) agent.SensorSnapshot {
	for _, s := range rep.Sensors {
		if s.Name == name {
			return s
		}
	}
	return agent.SensorSnapshot{}
}

const statusSensors = `  - {name: air, driver: sim, interval: 50ms, values: [temperature_c, humidity_pct]}
  - {name: door, driver: sim, interval: 50ms, waveform: square, values: [level]}
`

func TestStatusHealthy(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	a := startStatusAgent(t, ctx, srv, pki, statusSensors)
	rep := a.until("values of both sensors and a publish", func(r statusReport) bool {
		return len(sensorByName(r, "air").Values) == 2 && len(sensorByName(r, "door").Values) == 1 && !r.Publish.LastSuccess.IsZero()
	})
	if rep.State != "healthy" || len(rep.Problems) > 0 || rep.Version != e2eVersion || rep.Device != "pi-status" {
		t.Errorf("state %q problems %q version %q device %q", rep.State, rep.Problems, rep.Version, rep.Device)
	}
	if rep.Certificate == nil || rep.Certificate.DaysLeft <= 0 || rep.Route.Host != "localhost" || !rep.Route.ALPN || rep.Route.Proxy != "" {
		t.Errorf("certificate %+v route %+v", rep.Certificate, rep.Route)
	}
	if s := sensorByName(rep, "air"); !s.Healthy || s.Driver != "sim" || s.Interval != "50ms" || s.LastReading.IsZero() {
		t.Errorf("air: %+v", s)
	}
	sock := filepath.Join(a.stateDir, socketName)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket %s: %v %v, want a socket of mode 0660", sock, fi.Mode(), err)
	}

	r := runStatus(t, ctx, a.cfg)
	if r.code != exitOK {
		t.Errorf("status: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		`(?m)^sensor-agent ` + regexp.QuoteMeta(e2eVersion) + ` \(pid \d+\): healthy, up `,
		`(?m)^  route: +localhost:\d+ \(ALPN x-amzn-http-ca\), direct$`,
		`(?m)^  publish: +ok, last success \d\d:\d\d:\d\dZ \(`,
		`(?m)^  remote config: +off \(no shadow\)$`,
		`(?m)^SENSOR +DRIVER +INTERVAL +HEALTH +ERRORS +LAST READING +VALUES$`,
		`(?m)^air +sim +50ms +ok +0 +\d\d:\d\d:\d\dZ \(\S+ ago\) +humidity [\d.]+ %, temperature [\d.]+ °C$`,
		`(?m)^door +sim +50ms +ok +0 +.* level [01]$`,
		`(?m)^  pending: +\d+ readings`,
		`(?m)^  dropped: +none$`,
	} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("status output lacks %s:\n%s", want, r.stdout)
		}
	}

	// A reload hands the socket to the next agent.
	a.p.signal(syscall.SIGHUP)
	a.p.waitOutput(ctx, a.p.stderr, regexp.MustCompile(`msg="config reloaded"`))
	a.until("the reloaded agent", func(r statusReport) bool { return r.State == "healthy" && r.Started.Before(r.Snapshot.Started) })

	a.p.terminate()
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("socket %s left behind after SIGTERM", sock)
	}
	r = runStatus(t, ctx, a.cfg)
	if r.code != exitNotRunning || !strings.Contains(r.stderr, "not running") || !strings.Contains(r.stderr, sock) {
		t.Errorf("after SIGTERM: exit %d, want %d\n%s", r.code, exitNotRunning, r.stderr)
	}
}

func TestStatusFailingSensor(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	a := startStatusAgent(t, ctx, srv, pki, statusSensors+"  - {name: broken, driver: sim, interval: 50ms, fail_open: 1000000}\n")
	a.until("the broken sensor failing", func(r statusReport) bool {
		return sensorByName(r, "broken").ConsecutiveErrors > 0 && len(sensorByName(r, "air").Values) > 0
	})
	r := runStatus(t, ctx, a.cfg)
	if r.code != exitFailure {
		t.Errorf("status: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		`(?m)^sensor-agent \S+ \(pid \d+\): degraded`,
		`(?m)^broken +sim +50ms +FAILING +[1-9]\d* +never +-$`,
		`(?m)^  broken: open: broken: sim: open: simulated failure \d+ of 1000000 \(fail_open\)$`,
		`(?m)^air +sim +50ms +ok `,
		`(?m)^  - sensor broken failing \(\d+ consecutive errors\): open: broken: sim: open`,
	} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("status output lacks %s:\n%s", want, r.stdout)
		}
	}
}

func TestStatusEndpointDown(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	if err := srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	a := startStatusAgent(t, ctx, srv, pki, statusSensors)
	a.until("a publish error", func(r statusReport) bool { return r.Publish.LastError != "" && r.Spool.Pending > 0 })
	r := runStatus(t, ctx, a.cfg)
	if r.code != exitFailure {
		t.Errorf("status: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		`(?m)^  publish: +FAILING, last success never; `,
		`(?m)^  last error: +\S`,
		`(?m)^air +sim +50ms +ok `,
		`(?m)^  pending: +[1-9]\d* readings, oldest `,
		`(?m)^  - publishing failing: `,
	} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("status output lacks %s:\n%s", want, r.stdout)
		}
	}
}

// TestStatusNotRunning: no socket at all, and a socket file nobody
// listens on (an agent killed with SIGKILL leaves one).
func TestStatusNotRunning(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg := agentConfig{device: "pi-status", stateDir: stateDir, addr: srv.ALPNAddr(), alpn: "on", pki: pki,
		format: "batch", maxReadings: 50, flushInterval: "100ms", sensors: statusSensors}.write(t)
	r := runStatus(t, ctx, cfg)
	sock := filepath.Join(stateDir, socketName)
	if r.code != exitNotRunning || r.stdout != "" ||
		!regexp.MustCompile(`^sensor-agent is not running: no agent answers on \S+/run/agent.sock \(no such file or directory\) or `+
			regexp.QuoteMeta(sock)+` \(no such file or directory\)\.\nSee .systemctl status sensor-agent.`).MatchString(r.stderr) {
		t.Errorf("no socket: exit %d, want %d\nstdout: %q\nstderr:\n%s", r.code, exitNotRunning, r.stdout, r.stderr)
	}
	p := startEnv(t, ctx, nil, []string{"RUNTIME_DIRECTORY="}, "run", "-config", cfg)
	p.waitOutput(ctx, p.stderr, regexp.MustCompile(`msg="status socket"`))
	p.signal(syscall.SIGKILL)
	p.wait()
	r = runStatus(t, ctx, cfg, "-json")
	if r.code != exitNotRunning || !strings.Contains(r.stderr, sock+" (connection refused)") {
		t.Errorf("stale socket: exit %d, want %d\n%s", r.code, exitNotRunning, r.stderr)
	}
}
