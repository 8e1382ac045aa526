package main

// The promises of the README's Guarantees, attacked from outside: the real
// binary on real filesystems (tmpfs, loop-mounted ext4) that are remounted
// read-only, filled, or deleted under it, a second process on the same
// state directory, and an endpoint that goes away. Every test ends with a
// ledger of every reading taken (see ledger_test.go): none may be lost
// silently, no drop report may name a delivered reading, and no
// (incarnation, seq) may carry two readings.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// faultTimeout bounds a fault test; they run for tens of seconds.
const faultTimeout = 3 * time.Minute

func faultContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), faultTimeout)
	t.Cleanup(cancel)
	return ctx
}

// faultRig is an emulator, a config and a ledger.
type faultRig struct {
	t    *testing.T
	ctx  context.Context
	srv  *iotemu.Server
	cfg  agentConfig
	path string
	led  *ledger
	runs int
}

// book adds a run's stderr to the ledger; with SENSOR_AGENT_FAULT_LOGS=DIR
// it is also kept there, for a post-mortem.
func (r *faultRig) book(stderr string) {
	r.runs++
	r.led.addLog(stderr)
	if dir := os.Getenv("SENSOR_AGENT_FAULT_LOGS"); dir != "" {
		name := fmt.Sprintf("%s-%03d.log", strings.ReplaceAll(r.t.Name(), "/", "_"), r.runs)
		os.WriteFile(filepath.Join(dir, name), []byte(stderr), 0o644)
	}
}

func newFaultRig(t *testing.T, stateDir, sensors, extra string) *faultRig {
	srv, pki := startEmulator(t, iotemu.Options{PlainAddr: iotemu.Off})
	cfg := agentConfig{device: "pi-fault", stateDir: stateDir, addr: srv.ALPNAddr(), alpn: "on", pki: pki,
		format: "batch", maxReadings: 50, flushInterval: "200ms", sensors: sensors, extra: extra,
		health: true, logLevel: "debug"}
	return &faultRig{t: t, ctx: faultContext(t), srv: srv, cfg: cfg, path: cfg.write(t), led: newLedger()}
}

const fastSensor = "  - {name: s, driver: sim, interval: 20ms}\n"

// start runs the agent on the rig's config.
func (r *faultRig) start() *proc {
	return start(r.t, r.ctx, nil, "run", "-config", r.path)
}

// stop sends SIGTERM, checks a clean exit and books the run.
func (r *faultRig) stop(p *proc) result {
	r.t.Helper()
	res := p.terminate()
	r.book(res.stderr)
	if res.code != 0 {
		r.t.Fatalf("exit %d after SIGTERM\nstderr:\n%s", res.code, tail(res.stderr, 60))
	}
	return res
}

// waitMessages waits until the emulator has n more messages than now.
func (r *faultRig) waitMessages(p *proc, n int) {
	r.t.Helper()
	want := len(r.srv.Messages()) + n
	ctx, cancel := context.WithTimeout(r.ctx, 45*time.Second)
	defer cancel()
	if _, err := r.srv.Wait(ctx, want); err != nil {
		r.t.Fatalf("waiting for %d messages: %v\nstderr:\n%s", want, err, tail(p.stderr.String(), 60))
	}
}

// drain runs the agent with a finite sensor until everything stored, from
// every earlier run, is delivered, and books it.
func (r *faultRig) drain() result {
	r.t.Helper()
	final := r.cfg
	final.sensors = "  - {name: s, driver: sim, interval: 20ms, count: 5}\n"
	res := start(r.t, r.ctx, nil, "run", "-exit-when-idle", "-config", final.write(r.t)).wait()
	r.book(res.stderr)
	if res.code != 0 {
		r.t.Fatalf("final run: exit %d\nstderr:\n%s", res.code, tail(res.stderr, 60))
	}
	return res
}

// settle books what the emulator received and the dead letters, and
// checks the ledger.
func (r *faultRig) settle() tally {
	r.t.Helper()
	r.led.addMessages(r.t, r.srv.Messages())
	r.led.addDeadLetters(r.t, filepath.Join(r.cfg.stateDir, "spool", agent.DeadLetterFile))
	tl := r.led.tally()
	r.t.Logf("ledger: %s", tl)
	tl.check(r.t)
	if tl.taken == 0 {
		r.t.Fatal("no reading taken at all")
	}
	return tl
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func line(pattern string) *regexp.Regexp { return regexp.MustCompile(pattern) }

// Defect 1 (and 7): a state directory remounted read-only. The agent used
// to exit 1 ("seq file: ... read-only file system"). It must start, sample
// and publish from memory under a volatile incarnation, and at exit say
// exactly how many readings memory held and that they are lost.
func TestFaultReadOnlyStateDir(t *testing.T) {
	fs := mountTmpfs(t, "4m")
	r := newFaultRig(t, filepath.Join(fs, "state"), fastSensor, "")
	p := r.start()
	r.waitMessages(p, 3)
	r.stop(p)

	remount(t, fs, "ro")
	p = r.start()
	p.waitOutput(r.ctx, p.stderr, line(`cannot write the sequence counter`))
	r.waitMessages(p, 3)
	// Stop while the endpoint is away: memory holds what was taken since.
	if err := r.srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	p.waitOutput(r.ctx, p.stderr, line(`msg="publish failed; will retry"`))
	res := r.stop(p)
	m := regexp.MustCompile(`msg="readings held only in memory are lost now[^"]*" .*?readings=(\d+)`).FindStringSubmatch(res.stderr)
	if m == nil {
		t.Fatalf("no word at exit about the readings lost from memory:\n%s", tail(res.stderr, 40))
	}
	if strings.Contains(res.stderr, "remain in the spool") {
		t.Errorf("says readings remain in the spool, but the spool could not be written:\n%s", tail(res.stderr, 20))
	}

	if err := r.srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	remount(t, fs, "rw")
	r.drain()
	tl := r.settle()
	if tl.volatileMessages == 0 {
		t.Error(`no message marked "volatile":true while the state directory was read-only`)
	}
	// The count is exact about what memory held; some of it may have
	// reached the endpoint in a message whose reply was cut off when it
	// went down (delivered, yet never acknowledged).
	if n, _ := strconv.Atoi(m[1]); n < tl.lostAtExit || n == 0 {
		t.Errorf("the exit line says %s readings lost; the ledger counts %d taken into memory and never delivered", m[1], tl.lostAtExit)
	}
}

// Defect 1, full disk: the lease cannot move and the spool cannot grow.
// The agent starts, publishes from memory, and when space comes back it
// writes the counter and moves memory to disk by itself.
func TestFaultFullStateDir(t *testing.T) {
	fs := mountExt4(t, 8).dir
	r := newFaultRig(t, filepath.Join(fs, "state"), fastSensor, "")
	p := r.start()
	r.waitMessages(p, 3)
	r.stop(p)

	filler := fill(t, fs)
	t.Logf("filled: %s", sizeOf(t, fs))
	p = r.start()
	p.waitOutput(r.ctx, p.stderr, line(`spool cannot be written|spool unavailable`))
	r.waitMessages(p, 3)
	if err := r.srv.SetDown(true); err != nil { // memory holds readings
		t.Fatal(err)
	}
	p.waitOutput(r.ctx, p.stderr, line(`msg="publish failed; will retry"`))
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	p.waitOutput(r.ctx, p.stderr, line(`spool writable again: readings kept in memory moved to disk`))
	if err := r.srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	r.waitMessages(p, 3)
	res := r.stop(p)
	if strings.Contains(res.stderr, "lost now") {
		t.Errorf("readings lost at exit although the disk came back:\n%s", tail(res.stderr, 30))
	}
	r.drain()
	if tl := r.settle(); tl.lostAtExit != 0 {
		t.Errorf("%d readings lost from memory", tl.lostAtExit)
	}
}

// The SD card fails while the agent runs and the kernel remounts the
// filesystem read-only (errors=remount-ro): writes to the files the agent
// holds open fail too. It goes on from memory under a volatile
// incarnation, a reload keeps what memory holds, and at exit it says what
// is lost; after the boot's fsck it starts again with nothing lost
// silently.
func TestFaultDiskFailsReadOnly(t *testing.T) {
	disk := mountExt4(t, 16)
	r := newFaultRig(t, filepath.Join(disk.dir, "state"), fastSensor, "")
	p := r.start()
	r.waitMessages(p, 3)
	disk.fail()
	p.waitOutput(r.ctx, p.stderr, line(`spool cannot be written`))
	p.signal(syscall.SIGHUP)
	p.waitOutput(r.ctx, p.stderr, line(`msg="config reloaded"`))
	r.waitMessages(p, 5)
	res := r.stop(p)
	if strings.Contains(res.stderr, "remain in the spool") && !regexp.MustCompile(`remain in the spool[^\n]*readings=\d+`).MatchString(res.stderr) {
		t.Errorf("unclear words at exit:\n%s", tail(res.stderr, 20))
	}
	disk.repair()
	r.drain()
	if tl := r.settle(); tl.volatileMessages == 0 {
		t.Error(`no message marked "volatile":true after the disk failed`)
	}
}

// Defect 2: a 2 MB tmpfs and the default 64 MiB spool.max_bytes. The
// limit is fitted to the filesystem at start (warned), so the spool drops
// its oldest segment (reported) rather than filling the disk; and when
// something else fills the disk too, delivered segments are still
// reclaimed (the reserve pays for the cursor), the spool becomes writable
// again by itself, memory moves back to disk, and a restart works.
func TestFaultSpoolFillsItsDisk(t *testing.T) {
	fs := mountTmpfs(t, "2m")
	// Big readings fill 2 MB in seconds.
	sensors := ""
	for i := range 3 {
		sensors += fmt.Sprintf("  - {name: s%d, driver: sim, interval: 10ms, values: [%s]}\n", i, bigValues)
	}
	r := newFaultRig(t, filepath.Join(fs, "state"), sensors, "")
	if err := r.srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	p := r.start()
	p.waitOutput(r.ctx, p.stderr, line(`the size limit is more than the filesystem can hold`))
	p.waitOutput(r.ctx, p.stderr, line(`spool: full: deleted the oldest segment`))
	// And the rest of the disk goes too, to another writer that keeps
	// taking what the spool frees (else the spool only shrinks again).
	filler := fill(t, fs)
	stopFilling := keepFull(t, filler)
	p.waitOutput(r.ctx, p.stderr, line(`spool cannot be written`))
	stopFilling()
	t.Logf("disk full: %s", sizeOf(t, fs))
	if err := r.srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	p.waitOutput(r.ctx, p.stderr, line(`spool writable again`))
	r.waitMessages(p, 5)
	res := r.stop(p)
	if strings.Count(res.stderr, "memory buffer full") > 3 {
		t.Errorf("memory drops logged reading by reading: %d lines", strings.Count(res.stderr, "memory buffer full"))
	}
	if free := freeBytes(t, fs); free == 0 {
		t.Errorf("the filesystem is still 100%% full after the backlog was delivered")
	}
	os.Remove(filler)
	r.drain()
	tl := r.settle()
	if tl.dropped["spool full"] == 0 {
		t.Error(`nothing reported as "spool full"`)
	}
}

// bigValues makes a sim reading of about 600 bytes.
const bigValues = "a_c, b_c, c_c, d_c, e_c, f_c, g_c, h_c, i_c, j_c, k_c, l_c, m_c, n_c, o_c, p_c, q_c, r_c, s_c, t_c"

// Defect 3: two agents on one state directory. The second exits at once
// naming the PID of the first; the spool commands still work read-only.
func TestFaultSecondInstance(t *testing.T) {
	r := newFaultRig(t, filepath.Join(t.TempDir(), "state"), fastSensor, "")
	p := r.start()
	r.waitMessages(p, 2)
	second := start(t, r.ctx, nil, "run", "-config", r.path).wait()
	if second.code != 1 {
		t.Errorf("second agent: exit %d, want 1", second.code)
	}
	want := fmt.Sprintf("(pid %d)", p.cmd.Process.Pid)
	if !strings.Contains(second.stderr, "another sensor-agent runs on it") || !strings.Contains(second.stderr, want) {
		t.Errorf("second agent's error does not say who holds the state directory (%s):\n%s", want, second.stderr)
	}
	for _, sub := range []string{"stats", "verify", "export"} {
		res := start(t, r.ctx, nil, "spool", sub, "-config", r.path).wait()
		if res.code != 0 {
			t.Errorf("spool %s while the agent runs: exit %d\n%s%s", sub, res.code, res.stdout, res.stderr)
		}
	}
	r.stop(p)
	r.drain()
	r.settle()
}

// Defect 4: `rm -rf state/spool` while publishing, then an outage and a
// restart. The agent noticed nothing and lost 1,025 readings; now it
// recreates the spool, carries over what the deleted one held, and
// reports what it could not.
func TestFaultSpoolDeleted(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	r := newFaultRig(t, state, fastSensor+"  - {name: t, driver: sim, interval: 30ms}\n", "")
	p := r.start()
	r.waitMessages(p, 5)
	if err := r.srv.SetDown(true); err != nil { // a backlog in the spool
		t.Fatal(err)
	}
	p.waitOutput(r.ctx, p.stderr, line(`msg="publish failed; will retry"`))
	if err := os.RemoveAll(filepath.Join(state, "spool")); err != nil {
		t.Fatal(err)
	}
	p.waitOutput(r.ctx, p.stderr, line(`msg="spool recreated"`))
	if _, err := os.Stat(filepath.Join(state, "spool", "meta")); err != nil {
		t.Errorf("spool not recreated on disk: %v", err)
	}
	res := r.stop(p)
	if n := strings.Count(res.stderr, "level=ERROR"); n > 5 {
		t.Errorf("%d error lines: the deletion is reported once, not every second:\n%s", n, tail(res.stderr, 30))
	}
	if err := r.srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	r.drain()
	r.settle()
}

// Memory full while the disk cannot be written: one log line per 10 s,
// not one per reading; the losses are reported in the next message.
func TestFaultMemoryFullLogsOnce(t *testing.T) {
	fs := mountTmpfs(t, "4m")
	r := newFaultRig(t, filepath.Join(fs, "state"), strings.ReplaceAll(fastSensor, "20ms", "2ms"), "")
	r.cfg.publishExtra = "  max_bytes: 4KiB\n  queue_bytes: 8KiB\n"
	r.path = r.cfg.write(t)
	p := r.start()
	r.waitMessages(p, 2)
	r.stop(p)
	remount(t, fs, "ro")
	if err := r.srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	p = r.start()
	p.waitOutput(r.ctx, p.stderr, line(`memory buffer full`))
	if err := r.srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	// Wait for the report of the loss to reach the endpoint.
	for {
		r.waitMessages(p, 1)
		if strings.Contains(string(r.srv.Messages()[len(r.srv.Messages())-1].Payload), `"memory full"`) {
			break
		}
	}
	res := r.stop(p)
	if n := strings.Count(res.stderr, "memory buffer full"); n > 4 {
		t.Errorf("%d lines about the memory buffer for one episode", n)
	}
	remount(t, fs, "rw")
	r.drain()
	if tl := r.settle(); tl.dropped["memory full"] == 0 {
		t.Error(`no reading reported "memory full"`)
	}
}

// A clean stop persists every acknowledgement: stopping and starting again
// never sends a reading twice, even after an outage left per-topic
// acknowledgements interleaved with the backlog. And after an outage,
// data flows again within seconds of the endpoint's return. (The outage is
// an endpoint answering 503: unlike one that vanishes mid-request, it
// loses no reply, so every duplicate would be the clean stop's fault.)
func TestCleanStopNoDuplicatesAndRecovery(t *testing.T) {
	sensors := ""
	for i, ivl := range []string{"10ms", "15ms", "20ms", "25ms", "30ms"} {
		sensors += fmt.Sprintf("  - {name: s%d, driver: sim, interval: %s}\n", i, ivl)
	}
	r := newFaultRig(t, filepath.Join(t.TempDir(), "state"), sensors, "")
	r.cfg.maxReadings = 20
	r.path = r.cfg.write(t)
	var worst time.Duration
	for cycle := range 3 {
		p := r.start()
		r.waitMessages(p, 3)
		if err := r.srv.SetRates(iotemu.Rates{Status: map[int]float64{503: 1}}); err != nil {
			t.Fatal(err)
		}
		// Long enough for a backlog, and for the retry delay to grow.
		p.waitOutput(r.ctx, p.stderr, line(`attempt=3 `))
		r.srv.WaitRequests(r.ctx, r.srv.Requests()+6)
		before := len(r.srv.Messages())
		back := time.Now()
		if err := r.srv.SetRates(iotemu.Rates{}); err != nil {
			t.Fatal(err)
		}
		msgs, err := r.srv.Wait(r.ctx, before+1)
		if err != nil {
			t.Fatal(err)
		}
		took := msgs[before].Received.Sub(back)
		worst = max(worst, took)
		t.Logf("cycle %d: first delivery %s after the endpoint came back", cycle, took.Round(time.Millisecond))
		// Stopped while the backlog drains and live data goes first, so
		// per-topic acknowledgements interleave.
		r.waitMessages(p, 10)
		r.stop(p)
	}
	r.drain()
	tl := r.settle()
	if tl.duplicates != 0 {
		t.Errorf("%d readings sent twice across clean stops", tl.duplicates)
	}
	// Generous for a slow machine: the figure is printed above; the retry
	// delay for a busy endpoint is at most 2 s for its first ten answers.
	if worst > 15*time.Second {
		t.Errorf("data flowed again only %s after the endpoint came back", worst)
	}
}
