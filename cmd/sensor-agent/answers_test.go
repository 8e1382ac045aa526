package main

import (
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// trapURL is a server that fails the test if anything reaches it: where
// the emulator's redirects point.
func trapURL(t *testing.T) (string, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		t.Errorf("a redirect was followed: %s %s", r.Method, r.URL)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/moved", &hits
}

// TestRunKeepsDataWhenNotAWSAnswers is issue 9's field report with the real
// binary: an endpoint that redirects, then one that answers 404 with an HTML
// page, while a sim sensor samples. Nothing may be dead-lettered: the agent
// names the problem, keeps the data, and once the endpoint answers as AWS
// does, every reading arrives. The agent backs off a minute after such an
// answer, so each mode gets its own run of a few seconds, and restarts get
// the data out.
func TestRunKeepsDataWhenNotAWSAnswers(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{PlainAddr: iotemu.Off})
	loc, hits := trapURL(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg := agentConfig{device: "pi-e2e", stateDir: stateDir, addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
		maxReadings: 20, flushInterval: "100ms", sensors: "  - {name: s, driver: sim, interval: 50ms}\n"}
	path := cfg.write(t)

	refused := regexp.MustCompile(`.*level=ERROR msg="publish refused[^\n]*`)
	for _, tc := range []struct {
		name  string
		mode  iotemu.Mode
		words []string
	}{
		{"redirect", iotemu.Mode{Answer: iotemu.Redirect, Status: 307, Location: loc},
			[]string{"307 Temporary Redirect to " + loc, "the endpoint redirects, which AWS IoT never does", "iot:Data-ATS", "not followed", "data is kept"}},
		{"404 page", iotemu.Mode{Answer: iotemu.HTML, Status: 404},
			[]string{`404 Not Found: an HTML page (title \"404 Not Found\") instead of AWS's JSON`, "no AWS IoT publish path", "iot:Data-ATS", "data is kept"}},
	} {
		if err := srv.SetMode(tc.mode); err != nil {
			t.Fatal(err)
		}
		before := srv.Requests()
		p := start(t, ctx, nil, "run", "-config", path)
		line := p.waitOutput(ctx, p.stderr, refused)[0]
		for _, w := range tc.words {
			if !strings.Contains(line, w) {
				t.Errorf("%s: the refusal lacks %q:\n%s", tc.name, w, line)
			}
		}
		// Let the sensor sample a while against the misbehaving endpoint
		// (as killAfter lets a run last).
		timer := time.NewTimer(2 * time.Second)
		select {
		case <-timer.C:
		case <-p.done:
			t.Fatalf("%s: the agent exited by itself:\n%s", tc.name, p.stderr)
		}
		// No hammering: one refused publish, then the long backoff.
		if n := srv.Requests() - before; n != 1 {
			t.Errorf("%s: %d requests while running, want 1 (the refused one)", tc.name, n)
		}
		if tc.name == "404 page" {
			// Back to AWS's answers before the stop: the last attempt at
			// shutdown may get some out.
			if err := srv.SetMode(iotemu.Mode{}); err != nil {
				t.Fatal(err)
			}
		}
		r := p.terminate()
		if r.code != 0 {
			t.Errorf("%s: exit %d after SIGTERM\n%s", tc.name, r.code, r.stderr)
		}
		if strings.Contains(r.stderr, "rejected permanently") {
			t.Errorf("%s: messages were dead-lettered:\n%s", tc.name, r.stderr)
		}
		taken, _ := lastStatus(t, r.stderr)
		t.Logf("%s: %d readings taken, %d requests", tc.name, taken, srv.Requests()-before)
	}
	if n := len(srv.Swallowed()); n != 0 {
		t.Errorf("the emulator swallowed %d messages", n)
	}

	// Last run: a finite sensor, so the agent exits once everything stored,
	// from every earlier run, is delivered.
	final := cfg
	final.sensors = "  - {name: s, driver: sim, interval: 50ms, count: 10}\n"
	r := start(t, ctx, nil, "run", "-exit-when-idle", "-config", final.write(t)).wait()
	if r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	rs := decodeMessages(t, srv.Messages(), "pi-e2e", "batch", 20, time.Time{}, time.Now().Add(time.Minute))
	var hi uint64
	for _, x := range rs {
		hi = max(hi, x.Seq)
	}
	dups := checkSeqs(t, rs, 1, hi, true)
	if _, err := os.Stat(filepath.Join(stateDir, "spool", agent.DeadLetterFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dead-letter file: %v; want none", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the redirect target was contacted %d times", n)
	}
	t.Logf("seq 1..%d delivered in %d messages, %d duplicates; %d requests in all", hi, len(srv.Messages()), dups, srv.Requests())
}

// TestEmulateAnswer runs `emulate -answer` and publishes to it.
func TestEmulateAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		answer string
		words  []string
	}{
		{"html=404", []string{"404 Not Found: an HTML page", "no AWS IoT publish path", "(auth)"}},
		{"redirect=308,https://portal.invalid/x", []string{"308 Permanent Redirect to https://portal.invalid/x", "(auth)"}},
	} {
		t.Run(tc.answer, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			dir := filepath.Join(t.TempDir(), "emu")
			emu := start(t, ctx, nil, "emulate", "-dir", dir, "-alpn-listen", "127.0.0.1:0", "-plain-listen", "off", "-answer", tc.answer)
			addr := emu.waitOutput(ctx, emu.stderr, regexp.MustCompile(`msg="listening, 443-style[^"]*" addr=(\S+)`))[1]
			// The mode is set before the listeners are announced.
			if want := `msg="answer mode" mode="` + tc.answer + `"`; !strings.Contains(emu.stderr.String(), want) {
				t.Errorf("emulate does not log %s:\n%s", want, emu.stderr)
			}
			pki, err := iotemu.NewPKI(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg := agentConfig{device: "pi-e2e", addr: addr, alpn: "on", pki: pki, format: "batch",
				maxReadings: 7, flushInterval: "1s", sensors: twoSimSensors}.write(t)
			pub := sensorAgent(t, ctx, nil, "publish", "-config", cfg, "-topic", "sensors/pi-e2e/test", `{"hello": 1}`)
			if pub.code == 0 {
				t.Fatalf("publish to an emulator answering %s succeeded:\n%s", tc.answer, pub.stdout)
			}
			for _, w := range tc.words {
				if !strings.Contains(pub.stderr, w) {
					t.Errorf("publish's error lacks %q:\n%s", w, pub.stderr)
				}
			}
			emu.signal(os.Interrupt)
			if r := emu.wait(); r.code != 0 || !strings.Contains(r.stderr, "msg=stopping messages=0") {
				t.Errorf("emulate: exit %d\n%s", r.code, r.stderr)
			}
		})
	}
	t.Run("bad mode", func(t *testing.T) {
		t.Parallel()
		r := sensorAgent(t, testContext(t), nil, "emulate", "-dir", t.TempDir(), "-answer", "html=99")
		if r.code == 0 || !strings.Contains(r.stderr, "-answer") || !strings.Contains(r.stderr, "not 200-599") {
			t.Errorf("emulate -answer html=99: exit %d\n%s", r.code, r.stderr)
		}
	})
}
