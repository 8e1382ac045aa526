package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// notifySocket is a fake systemd: a unixgram socket collecting sd_notify
// messages.
type notifySocket struct {
	path string
	msgs chan string

	mu  sync.Mutex
	all []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	return listenNotifyAt(t, filepath.Join(t.TempDir(), "notify.sock"))
}

func listenNotifyAt(t *testing.T, path string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySocket{path: path, msgs: make(chan string, 4096)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			for _, m := range strings.Split(string(buf[:n]), "\n") {
				s.mu.Lock()
				s.all = append(s.all, m)
				s.mu.Unlock()
				select {
				case s.msgs <- m:
				default: // nobody is reading: kept in all
				}
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// wait returns the first message (line) matching re, failing the test
// when ctx ends.
func (s *notifySocket) wait(t *testing.T, ctx context.Context, re *regexp.Regexp) string {
	t.Helper()
	for {
		select {
		case m := <-s.msgs:
			if re.MatchString(m) {
				return m
			}
		case <-ctx.Done():
			t.Fatalf("no sd_notify message matching %s; got:\n%s", re, strings.Join(s.messages(), "\n"))
		}
	}
}

func (s *notifySocket) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.all...)
}

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestNotifierSends(t *testing.T) {
	for _, tc := range []struct{ name, path string }{
		{"path", ""},
		{"abstract namespace", fmt.Sprintf("@sensor-agent-test-%d-%d", os.Getpid(), time.Now().UnixNano())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sock *notifySocket
			if tc.path == "" {
				sock = listenNotify(t)
			} else {
				sock = listenNotifyAt(t, tc.path)
			}
			n, err := newNotifier(env(map[string]string{"NOTIFY_SOCKET": sock.path}))
			if err != nil || n == nil {
				t.Fatalf("newNotifier: %v, %v", n, err)
			}
			if err := n.send(sdReady, sdStatus("readings taken 3,\n published 2")); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			sock.wait(t, ctx, regexp.MustCompile(`^READY=1$`))
			if m := sock.wait(t, ctx, regexp.MustCompile(`^STATUS=`)); m != "STATUS=readings taken 3, published 2" {
				t.Errorf("status %q: want it on one line, spaces squeezed", m)
			}
			if err := n.send("STATUS=two\nlines"); err == nil {
				t.Error("a line with a newline was sent")
			}
		})
	}
}

func TestNotifierOff(t *testing.T) {
	n, err := newNotifier(env(nil))
	if n != nil || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, %v; want nil, nil", n, err)
	}
	if err := n.send(sdReady); err != nil {
		t.Errorf("nil notifier: %v", err)
	}
	if _, err := newNotifier(env(map[string]string{"NOTIFY_SOCKET": "vsock:2:1234"})); err == nil {
		t.Error("vsock address accepted")
	}
	// systemd gone (socket removed): an error, not a hang or a panic.
	n, _ = newNotifier(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "gone.sock")}))
	if err := n.send(sdWatchdog); err == nil {
		t.Error("send to a missing socket succeeded")
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		want    time.Duration
		wantErr bool
	}{
		{nil, 0, false},
		{map[string]string{"WATCHDOG_USEC": "60000000"}, time.Minute, false},
		{map[string]string{"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "42"}, time.Minute, false},
		{map[string]string{"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "43"}, 0, false}, // another process's
		{map[string]string{"WATCHDOG_USEC": "0"}, 0, true},
		{map[string]string{"WATCHDOG_USEC": "soon"}, 0, true},
	} {
		got, err := watchdogInterval(env(tc.env), 42)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%v: %s, %v; want %s, error %v", tc.env, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestRunSystemd runs the binary as systemd would (NOTIFY_SOCKET,
// WATCHDOG_USEC): READY=1 once started, STATUS= lines, WATCHDOG=1 pings;
// SIGHUP with a changed config gives RELOADING=1 then READY=1, the new
// sensor set runs and the spool (incarnation, seq) is kept; a SIGHUP with
// a broken config is logged and changes nothing; SIGTERM gives STOPPING=1
// and exit 0, and every seq taken arrived exactly once.
func TestRunSystemd(t *testing.T) {
	ctx := testContext(t)
	sock := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", sock.path)
	t.Setenv("WATCHDOG_USEC", "400000") // pings every 200ms
	srv, pki := startEmulator(t, iotemu.Options{})
	stateDir := filepath.Join(t.TempDir(), "state")
	conf := func(sensors string) []byte {
		p := agentConfig{device: "pi-e2e", stateDir: stateDir, addr: srv.ALPNAddr(), alpn: "on", pki: pki,
			format: "batch", maxReadings: 50, flushInterval: "100ms", sensors: sensors}.write(t)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, conf("  - name: air\n    driver: sim\n    interval: 20ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, ctx, nil, "run", "-config", cfg)
	re := regexp.MustCompile
	sock.wait(t, ctx, re(`^READY=1$`))
	sock.wait(t, ctx, re(`^STATUS=readings taken \d+, published \d+, pending \d+; `))
	for range 3 {
		sock.wait(t, ctx, re(`^WATCHDOG=1$`))
	}
	if _, err := srv.Wait(ctx, 2); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, p.stderr)
	}

	// A broken config: logged, nothing else changes.
	if err := os.WriteFile(cfg, []byte("sensors:\n  - name: x\n    driver: nosuch\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	p.waitOutput(ctx, p.stderr, re(`msg="reload: the config does not load; going on with the running one"`))
	sock.wait(t, ctx, re(`^STATUS=reload failed, running the previous config: `))
	sock.wait(t, ctx, re(`^WATCHDOG=1$`))

	// A good one with another sensor.
	if err := os.WriteFile(cfg, conf("  - name: door\n    driver: sim\n    interval: 20ms\n    values: [level]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := len(srv.Messages())
	p.signal(syscall.SIGHUP)
	sock.wait(t, ctx, re(`^RELOADING=1$`))
	sock.wait(t, ctx, re(`^READY=1$`))
	p.waitOutput(ctx, p.stderr, re(`msg="config reloaded".* sensors=1`))
	// Wait for the new sensor's readings.
	for {
		msgs, err := srv.Wait(ctx, n+1)
		if err != nil {
			t.Fatalf("%v\nstderr:\n%s", err, p.stderr)
		}
		if strings.HasSuffix(msgs[len(msgs)-1].Topic, "/door") {
			break
		}
		n = len(msgs)
	}
	sock.wait(t, ctx, re(`^WATCHDOG=1$`))

	r := p.terminate()
	if r.code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0\nstderr:\n%s", r.code, r.stderr)
	}
	msgs := sock.messages()
	if msgs[len(msgs)-1] != sdStopping {
		t.Errorf("last sd_notify message %q, want STOPPING=1", msgs[len(msgs)-1])
	}

	// Every reading of both agents arrived once, numbered without a gap
	// and under one incarnation: the spool was kept across the reload.
	var rs []received
	incarnations := map[string]bool{}
	bySensor := map[string]int{}
	for i, m := range srv.Messages() {
		var b wireBatch
		if err := decodeStrict(m.Payload, &b); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		incarnations[b.Incarnation] = true
		for _, r := range b.Readings {
			rs = append(rs, received{wireReading: wireReading{Seq: r.Seq, Sensor: r.Sensor}, msg: i})
			bySensor[r.Sensor]++
		}
	}
	if len(incarnations) != 1 {
		t.Errorf("incarnations %v: want one, the spool kept across the reload", incarnations)
	}
	checkSeqs(t, rs, 1, uint64(len(rs)), false)
	if bySensor["air"] == 0 || bySensor["door"] == 0 {
		t.Errorf("readings per sensor %v: want both the first config's and the reloaded one's", bySensor)
	}
	t.Logf("%d readings in %d messages: %v; %d sd_notify messages", len(rs), len(srv.Messages()), bySensor, len(msgs))
}
