package main

// End-to-end tests of what the config loader refuses, of `check` failing
// on what would make `run` fail, and of the proxy password never being
// shown: the real binary, as a user meets it.

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
	"github.com/sensor-agent/sensor-agent/publisher/proxytest"
)

// aliasBombSensors is a sensors list of `aliases` aliases to one sensor
// that itself holds `values` aliases: tens of KB that expand to
// aliases×values values. mappings makes each value a mapping (ads1x15
// channels), several nodes each.
func aliasBombSensors(aliases, values int, mappings bool) string {
	var b strings.Builder
	if mappings {
		b.WriteString("  - &s\n    name: adc\n    driver: ads1x15\n    channels:\n      - &c {channel: A0, name: soil_v}\n")
		b.WriteString(strings.Repeat("      - *c\n", values))
	} else {
		b.WriteString("  - &s\n    name: bomb\n    driver: sim\n    values:\n      - &v level\n")
		b.WriteString(strings.Repeat("      - *v\n", values))
	}
	b.WriteString(strings.Repeat("  - *s\n", aliases))
	return b.String()
}

// unknownKeys is n top-level keys the config does not know.
func unknownKeys(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "unknown_%06d: 1\n", i)
	}
	return b.String()
}

// TestConfigRefused runs check and run on configs that must not load and
// checks that each fails at once with the error naming file and line. On
// the code before, the alias bombs ran out the deadline (404 MB and 20 s,
// 7.6 GB), the zero interval ran as 30s, the second document, the long
// topic and the explicit zero passed check, and the error listing had a
// line per unknown key.
func TestConfigRefused(t *testing.T) {
	t.Parallel()
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const sim = "  - name: air\n    driver: sim\n    interval: 20ms\n    count: 3\n"
	for _, tc := range []struct {
		name    string
		device  string // "" = pi-e2e
		sensors string
		extra   string
		want    []*regexp.Regexp // each must match stderr; PATH stands for the file
		lines   int              // if set, the number of lines stderr must have
	}{
		{
			name:    "1,000 aliases to a sensor of 1,000 aliases",
			sensors: aliasBombSensors(1000, 1000, false),
			want:    []*regexp.Regexp{regexp.MustCompile(`PATH:\d+: sensors\[\d+\]: alias \*s \(anchor &s on line \d+\): aliases expand to more than 10000 values; write the entries out or use fewer aliases\n$`)},
			lines:   1,
		},
		{
			name:    "4,000 aliases to a sensor of 4,000 aliased channels",
			sensors: aliasBombSensors(4000, 4000, true),
			want:    []*regexp.Regexp{regexp.MustCompile(`PATH:\d+: sensors\[0\]\.channels\[\d+\]: alias \*c \(anchor &c on line \d+\): aliases expand to more than 10000 values; write the entries out or use fewer aliases\n$`)},
			lines:   1,
		},
		{
			name:    "second YAML document",
			sensors: sim,
			extra:   "---\nsensors:\n  - name: door\n    driver: sim\n",
			want:    []*regexp.Regexp{regexp.MustCompile(`PATH:22: a second YAML document starts here \(---\): a config is one document`)},
		},
		{
			name:    "interval 0s",
			sensors: "  - name: air\n    driver: sim\n    interval: 0s\n",
			want:    []*regexp.Regexp{regexp.MustCompile(`PATH:20: sensors\[0\]\.interval: is 0 or empty: give a positive duration such as 30s, or leave the key out for the default 30s`)},
		},
		{
			name:    "timeout 0s",
			sensors: sim + "    timeout: 0s\n",
			want:    []*regexp.Regexp{regexp.MustCompile(`PATH:22: sensors\[0\]\.timeout: is 0 or empty`)},
		},
		{
			name:    "topic over 256 bytes once rendered",
			device:  "pi-" + strings.Repeat("d", 200),
			sensors: sim + "  - name: " + strings.Repeat("n", 50) + "\n    driver: sim\n",
			// The first sensor's topic is 215 bytes, the second's 262.
			want:  []*regexp.Regexp{regexp.MustCompile(`^sensor-agent \w+: PATH:22: sensors\[1\]: publish\.topic "sensors/\{device\}/\{sensor\}" gives this sensor the topic "sensors/pi-d{200}/n{50}", which AWS IoT refuses: invalid topic: 262 bytes, limit is 256; shorten publish\.topic, device_id or the sensor's name\n$`)},
			lines: 1,
		},
		{
			name:    "a thousand unknown keys",
			sensors: sim,
			extra:   unknownKeys(1000),
			want: []*regexp.Regexp{regexp.MustCompile(`^sensor-agent \w+: PATH:22: unknown_000000: unknown key`),
				regexp.MustCompile(`\nPATH:41: unknown_000019: unknown key[^\n]*\n… and 980 more errors\n$`)},
			lines: 21,
		},
		{
			name:    "file over 1 MiB",
			sensors: sim,
			extra:   unknownKeys(100_000), // 2.1 MB
			want:    []*regexp.Regexp{regexp.MustCompile(`^sensor-agent \w+: PATH: the file is \d+ bytes, more than the 1048576 \(1 MiB\) a config may have: a config is a few KB; check that this is the config file\n$`)},
			lines:   1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			device := tc.device
			if device == "" {
				device = "pi-e2e"
			}
			// Nothing is dialled: the config does not load.
			path := agentConfig{device: device, addr: "localhost:1", alpn: "on", pki: pki, format: "batch",
				maxReadings: 7, flushInterval: "1s", sensors: tc.sensors, extra: tc.extra}.write(t)
			for _, args := range [][]string{{"check", "-config", path}, {"run", "-config", path, "-exit-when-idle"}} {
				ctx := testContext(t)
				r := sensorAgent(t, ctx, nil, args...)
				if r.code != exitConfig { // was 1 before issue 10's distinct status for config errors
					t.Errorf("%s: exit %d, want %d", args[0], r.code, exitConfig)
				}
				if r.stdout != "" {
					t.Errorf("%s: stdout %q, want nothing", args[0], r.stdout)
				}
				for _, re := range tc.want {
					re = regexp.MustCompile(strings.ReplaceAll(re.String(), "PATH", regexp.QuoteMeta(path)))
					if !re.MatchString(r.stderr) {
						t.Errorf("%s: stderr does not match %s", args[0], re)
					}
				}
				if n := strings.Count(r.stderr, "\n"); tc.lines != 0 && n != tc.lines {
					t.Errorf("%s: %d lines on stderr, want %d", args[0], n, tc.lines)
				}
				if t.Failed() {
					t.Logf("%s stderr (first 2000 bytes):\n%.2000s", args[0], r.stderr)
				}
			}
		})
	}
}

// TestRunReloadRefusesAliasBomb sends SIGHUP to a running agent whose
// config was replaced by an alias bomb: the reload fails at once with the
// error, and the agent goes on publishing on the config it runs. Before,
// the reload raised the agent's memory to 417 MB.
func TestRunReloadRefusesAliasBomb(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	cfg := agentConfig{device: "pi-e2e", addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
		maxReadings: 50, flushInterval: "100ms", sensors: "  - name: air\n    driver: sim\n    interval: 20ms\n"}
	path := cfg.write(t)
	p := start(t, ctx, nil, "run", "-config", path)
	p.waitOutput(ctx, p.stderr, regexp.MustCompile(`msg="sensor-agent started"`))
	if _, err := srv.Wait(ctx, 1); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, p.stderr)
	}

	cfg.sensors = aliasBombSensors(1000, 1000, false)
	bomb, err := os.ReadFile(cfg.write(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bomb, 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	p.waitOutput(ctx, p.stderr, regexp.MustCompile(`level=ERROR msg="reload: the config does not load; going on with the running one" err="`+
		regexp.QuoteMeta(path)+`:\d+: sensors\[\d+\]: alias \*s \(anchor &s on line \d+\): aliases expand to more than 10000 values; write the entries out or use fewer aliases"`))

	// Still publishing the running config's sensor.
	n := len(srv.Messages())
	msgs, err := srv.Wait(ctx, n+2)
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, p.stderr)
	}
	for _, m := range msgs[n:] {
		if m.Topic != "sensors/pi-e2e/air" {
			t.Errorf("after the failed reload: message on %q, want sensors/pi-e2e/air", m.Topic)
		}
	}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)); err == nil {
		if m := regexp.MustCompile(`VmHWM:\s*(\d+ kB)`).FindSubmatch(status); m != nil {
			t.Logf("peak RSS of the agent (race detector on: %v): %s", raceEnabled(), m[1])
		}
	}
	r := p.terminate()
	if r.code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0\nstderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, `msg="config reloaded"`) {
		t.Errorf("the bomb was loaded:\n%s", r.stderr)
	}
}

// TestCheckCertificateValidity: check fails on a certificate that is
// expired or not valid yet by the device's clock, naming the dates and the
// clock, and saying that the clock may be wrong when it is not
// synchronised. Before, it said "certificate and key ok" and exit 0.
func TestCheckCertificateValidity(t *testing.T) {
	t.Parallel()
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	expiredCert, expiredKey, err := pki.IssueDeviceValidity(t.TempDir(), "expired", now.Add(-400*24*time.Hour), now.Add(-49*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	futureCert, futureKey, err := pki.IssueDeviceValidity(t.TempDir(), "future", now.Add(49*time.Hour), now.Add(400*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	const dateRE = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	for _, tc := range []struct {
		name, cert, key, clock string
		code                   int
		want                   []string // regexps, each must match stdout
	}{
		{name: "valid", clock: "synced", want: []string{`(?m)^endpoint localhost:1: certificate and key ok$`}},
		{name: "expired, clock synchronised", cert: expiredCert, key: expiredKey, clock: "synced", code: 1, want: []string{
			`(?m)^endpoint localhost:1: FAIL certificate .*expired\.pem\.crt \("expired"\): EXPIRED 2 days ago by this device's clock, which says ` + dateRE + `; the certificate is valid from ` + dateRE + ` to ` + dateRE + `\. TLS with AWS IoT fails until this is fixed\. The clock is synchronised \(set by the test\), so the certificate is what is wrong: create a new certificate`,
		}},
		{name: "expired, clock not synchronised", cert: expiredCert, key: expiredKey, clock: "unsynced", code: 1, want: []string{
			`FAIL certificate .*: EXPIRED 2 days ago by this device's clock, which says .* The clock is NOT synchronised \(set by the test\): a Raspberry Pi has no real-time clock and may boot with a wrong time, so the clock may be what is wrong; let NTP set it`,
		}},
		{name: "not valid yet, clock not synchronised", cert: futureCert, key: futureKey, clock: "unsynced", code: 1, want: []string{
			`FAIL certificate .*future\.pem\.crt \("future"\): NOT VALID YET \(valid in 2 days\) by this device's clock, which says ` + dateRE + `; the certificate is valid from ` + dateRE + ` to ` + dateRE + `\..*a Raspberry Pi has no real-time clock`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			path := agentConfig{device: "pi-e2e", addr: "localhost:1", alpn: "on", pki: pki, format: "batch",
				maxReadings: 7, flushInterval: "1s", sensors: "  - name: air\n    driver: sim\n",
				certFile: tc.cert, keyFile: tc.key}.write(t)
			// In this process: a test cannot set whether the machine's
			// clock is synchronised.
			var stdout, stderr bytes.Buffer
			err := check(ctx, path, "", fixedClock(tc.clock == "synced"), &stdout, &stderr)
			r := inProcessResult("check", err, &stdout, &stderr)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d", r.code, tc.code)
			}
			for _, w := range tc.want {
				if !regexp.MustCompile(w).MatchString(r.stdout) {
					t.Errorf("stdout does not match %s", w)
				}
			}
			// The sensors are still read.
			if !strings.Contains(r.stdout, "sensor air (sim): humidity_pct=50 temperature_c=20\n") {
				t.Errorf("the sensor was not read")
			}
			if tc.code != 0 && !strings.Contains(r.stderr, "sensor-agent check: 1 problem(s) found") {
				t.Errorf("stderr lacks the count of problems")
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}
}

// TestProxyPasswordNeverShown runs every command that reports on the proxy
// with a password in the proxy URL, in the file and in HTTPS_PROXY, and
// checks that the password appears nowhere in what they print (and
// publish's -proxy flag too). One URL has
// an unencoded '/' in the password, so that it parses as a host, a port and
// a path (which every command printed whole before); the other is
// well-formed and leads to a proxy that refuses the credentials, so that
// run and publish try to publish through it.
func TestProxyPasswordNeverShown(t *testing.T) {
	t.Parallel()
	const secret = "S3cretPW"
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	refusing := proxytest.StartProxy(t, proxytest.ProxyOptions{Answer: func(string) int { return 407 }})
	for _, px := range []struct {
		name, url string
		wantShown string // the proxy as the messages show it
	}{
		{"unencoded slash in the password", "http://user:1234/" + secret + "@127.0.0.1:3128", "http://user:xxxxx@127.0.0.1:3128"},
		{"encoded, proxy refuses the credentials", "http://user:1234%2F" + secret + "@" + refusing.Addr(), "http://user:xxxxx@" + refusing.Addr()},
	} {
		for _, source := range []string{"endpoint.proxy", "HTTPS_PROXY", "publish -proxy"} {
			t.Run(px.name+"/"+source, func(t *testing.T) {
				t.Parallel()
				env := []string{"HTTPS_PROXY=", "NO_PROXY=", "HTTP_PROXY="}
				extra := ""
				if source == "HTTPS_PROXY" {
					env[0] = "HTTPS_PROXY=" + px.url
				} else {
					extra = "  proxy: " + px.url + "\n"
				}
				// A host that is not loopback, so that HTTPS_PROXY applies;
				// the proxy resolves it (here, it never gets that far).
				path := agentConfig{device: "pi-e2e", addr: "localhost:1", alpn: "on", pki: pki, format: "batch",
					maxReadings: 7, flushInterval: "100ms", sensors: "  - name: air\n    driver: sim\n    interval: 20ms\n"}.write(t)
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				y := strings.Replace(string(data), "  host: localhost\n", "  host: sensor-agent-e2e.invalid\n"+extra, 1)
				if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
					t.Fatal(err)
				}
				commands := [][]string{
					{"check", "-config", path},
					{"doctor", "-config", path},
					{"doctor", "-json", "-config", path},
					{"publish", "-config", path, "-topic", "sensors/pi-e2e/cli", "-retries", "1", `{"x":1}`},
					{"run", "-config", path},
				}
				if source == "publish -proxy" {
					commands = [][]string{{"publish", "-config", path, "-proxy", px.url, "-topic", "sensors/pi-e2e/cli", "-retries", "1", `{"x":1}`}}
				}
				for _, args := range commands {
					ctx := testContext(t)
					p := startEnv(t, ctx, nil, env, args...)
					var r result
					if args[0] == "run" && strings.Contains(px.url, "%2F") {
						// Let it try to publish through the proxy, then stop it.
						p.waitOutput(ctx, p.stderr, regexp.MustCompile(`msg="publish [^"]*" err="publish [^ ]+: proxy `+regexp.QuoteMeta(px.wantShown)))
						r = p.terminate()
					} else {
						r = p.wait()
					}
					out := r.stdout + r.stderr
					if strings.Contains(out, secret) {
						t.Errorf("%s shows the proxy password:\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.stdout, r.stderr)
					}
					// Each names the proxy, redacted (check has nothing to
					// say about a well-formed one: it does not dial).
					if args[0] != "check" || !strings.Contains(px.url, "%2F") {
						if !strings.Contains(out, px.wantShown) {
							t.Errorf("%s does not name the proxy as %s:\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), px.wantShown, r.stdout, r.stderr)
						}
					}
				}
			})
		}
	}
}
