package main

// Tests of `sensor-agent doctor`: the command run in this process (with
// the clock's synchronisation and the environment given) with -json, against the emulator and real proxies (squid with Basic
// authentication, tinyproxy; publisher/proxytest), a programmable CONNECT
// proxy and a TLS-inspecting man in the middle, all on loopback. Each case
// checks the mark of every step and the words of the step that broke.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/cmd/sensor-agent/internal/doctor"
	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
	"github.com/sensor-agent/sensor-agent/publisher/proxytest"
)

// doctorConfig is what the cases vary in the config file.
type doctorConfig struct {
	host         string
	port         int
	alpn         string
	cert, key    string
	ca           string
	proxy        string
	fallbackPort int
	extra        string // more top-level YAML
	raw          string // the whole file instead, if set
}

func (c doctorConfig) write(t *testing.T) string {
	t.Helper()
	yaml := c.raw
	if yaml == "" {
		q := strconv.Quote
		yaml = fmt.Sprintf(`device_id: pi-doctor
state_dir: %s
endpoint:
  host: %s
  port: %d
  alpn: %s
  cert_file: %s
  key_file: %s
  ca_file: %s
  timeout: 5s
  proxy: %s
  fallback_port: %d
%ssensors:
  - name: air
    driver: sim
`, q(filepath.Join(t.TempDir(), "state")), c.host, c.port, c.alpn, q(c.cert), q(c.key), q(c.ca), q(c.proxy), c.fallbackPort, c.extra)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// doctorFixture is one case's world: an emulator (with its PKI) and the
// config, which the case's prepare adjusts.
type doctorFixture struct {
	emu *iotemu.Server
	pki *iotemu.PKI
	cfg doctorConfig
	env []string // the environment the doctor reads
}

func portNum(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// runDoctor runs `sensor-agent doctor` in this process, with env as the
// whole environment it reads (no proxy variables of the machine running
// the tests) and synced as the answer to "is the clock synchronised?",
// which a test cannot set on the machine.
func runDoctor(t *testing.T, ctx context.Context, env []string, synced bool, args ...string) result {
	t.Helper()
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	opts := doctor.Options{Getenv: func(k string) string { return vars[k] }, Clock: fixedClock(synced)}
	var stdout, stderr bytes.Buffer
	err := doctorCommand(ctx, args, &stdout, &stderr, opts)
	return inProcessResult("doctor", err, &stdout, &stderr)
}

// doctorJSON decodes -json output strictly.
func doctorJSON(t *testing.T, out string) []doctor.Step {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var steps []doctor.Step
	if err := dec.Decode(&steps); err != nil {
		t.Fatalf("doctor -json output is not a JSON array of steps: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("doctor -json printed more than one JSON value:\n%s", out)
	}
	return steps
}

// marksOf renders the steps' statuses as their marks, e.g. "✓✓✓✓--✓✓✓".
func marksOf(steps []doctor.Step) string {
	var b strings.Builder
	for _, s := range steps {
		b.WriteString(statusMarks[s.Status])
	}
	return b.String()
}

type doctorCase struct {
	name    string
	clock   string   // "synced" or "unsynced"; "" = synced
	args    []string // more flags
	prepare func(t *testing.T, f *doctorFixture)
	// marks of the steps config, certificate, clock, dns, proxy, tunnel,
	// tcp, tls, publish: ✓ pass, ! warn, ✗ fail, - skipped.
	marks   string
	detail  map[string][]string // step → what its detail must say
	hint    map[string][]string // step → what its hint must say
	secrets []string            // must not appear anywhere
	check   func(t *testing.T, f *doctorFixture, steps []doctor.Step)
}

func TestDoctor(t *testing.T) {
	t.Parallel()
	const user, pass = "alice", "p@ss:w0rd%"
	cred := url.UserPassword(user, pass).String() + "@"
	secrets := []string{pass, url.PathEscape(pass), url.QueryEscape(pass), "Wr0ng-Pa55",
		base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
	alpnPort := func(t *testing.T, f *doctorFixture) int { return portNum(t, f.emu.ALPNAddr()) }

	cases := []doctorCase{
		{
			name:  "direct, 443-style listener with ALPN",
			marks: "✓✓✓✓--✓✓✓",
			detail: map[string][]string{
				doctor.StepConfig:  {"config.yaml: device pi-doctor, endpoint localhost:", "(alpn on)"},
				doctor.StepCert:    {`"emulated-device" issued by "sensor-agent emulator CA"`, "key private.pem.key matches", "key mode 0600"},
				doctor.StepClock:   {"synchronised", "inside the certificate's validity"},
				doctor.StepDNS:     {"localhost → 127.0.0.1"},
				doctor.StepProxy:   {"not used: endpoint.proxy is empty and HTTPS_PROXY is not set"},
				doctor.StepTCP:     {"connected to localhost:"},
				doctor.StepTLS:     {"TLS 1.", "ALPN x-amzn-http-ca", "SNI localhost", "client certificate sent", `chain "localhost" ← "sensor-agent emulator CA"`},
				doctor.StepPublish: {"200 OK", "to sensor-agent/pi-doctor/doctor, traceId "},
			},
			check: func(t *testing.T, f *doctorFixture, steps []doctor.Step) {
				msgs := f.emu.Messages()
				if len(msgs) != 1 || msgs[0].Topic != "sensor-agent/pi-doctor/doctor" || msgs[0].ALPN != publisher.ALPNProtocol {
					t.Fatalf("emulator got %+v, want one message on sensor-agent/pi-doctor/doctor over ALPN", msgs)
				}
				var body struct {
					Doctor bool   `json:"doctor"`
					Device string `json:"device"`
					Time   string `json:"time"`
				}
				if err := json.Unmarshal(msgs[0].Payload, &body); err != nil || !body.Doctor || body.Device != "pi-doctor" {
					t.Errorf("payload %s: want {\"doctor\":true,\"device\":\"pi-doctor\",...} (%v)", msgs[0].Payload, err)
				}
				if tm, err := time.Parse(time.RFC3339Nano, body.Time); err != nil || time.Since(tm).Abs() > time.Minute {
					t.Errorf("payload time %q is not now", body.Time)
				}
				// The AWS certificate id is the SHA-256 of the DER.
				sum := sha256.Sum256(f.pki.Device.Leaf.Raw)
				if id := hex.EncodeToString(sum[:]); !strings.Contains(steps[1].Detail, "AWS certificate id "+id) {
					t.Errorf("certificate detail %q lacks the AWS id %s", steps[1].Detail, id)
				}
				if !strings.Contains(steps[8].Detail, msgs[0].RequestID) {
					t.Errorf("publish detail %q lacks the trace id %s", steps[8].Detail, msgs[0].RequestID)
				}
			},
		},
		{
			name: "direct, 8443-style listener without ALPN, -topic",
			prepare: func(t *testing.T, f *doctorFixture) {
				f.cfg.port, f.cfg.alpn = portNum(t, f.emu.PlainAddr()), "off"
			},
			args:   []string{"-topic", "sensors/pi-doctor/check"},
			marks:  "✓✓✓✓--✓✓✓",
			detail: map[string][]string{doctor.StepTLS: {"no ALPN offered", "client certificate sent"}, doctor.StepPublish: {"to sensors/pi-doctor/check"}},
		},
		{
			name: "endpoint down: connection refused",
			prepare: func(t *testing.T, f *doctorFixture) {
				f.cfg.port = proxytest.FreePort(t)
				f.cfg.fallbackPort = portNum(t, f.emu.PlainAddr())
			},
			marks:  "✓✓✓✓--✗--",
			detail: map[string][]string{doctor.StepTCP: {"refused the connection", "connection refused"}, doctor.StepTLS: {"needs a TCP connection (see tcp)"}},
			hint:   map[string][]string{doctor.StepTCP: {"ask IT to allow outbound TCP port", "endpoint.fallback_port", "sensor-agent doctor -port"}},
		},
		{
			name: "client certificate the server does not accept",
			prepare: func(t *testing.T, f *doctorFixture) {
				var err error
				if f.cfg.cert, f.cfg.key, err = iotemu.NewUntrustedClient(t.TempDir()); err != nil {
					t.Fatal(err)
				}
			},
			marks:  "✓✓✓✓--✓✗-",
			detail: map[string][]string{doctor.StepTLS: {"does not accept the client certificate", "bad certificate"}},
			hint:   map[string][]string{doctor.StepTLS: {"registered and ACTIVE in this account and region", "aws iot describe-certificate --certificate-id "}},
		},
		{
			name:    "403 from the policy",
			prepare: func(t *testing.T, f *doctorFixture) { f.emu.FailNext(http.StatusForbidden, 1) },
			marks:   "✓✓✓✓--✓✓✗",
			detail:  map[string][]string{doctor.StepPublish: {"403 ForbiddenException for sensor-agent/pi-doctor/doctor"}},
			hint: map[string][]string{doctor.StepPublish: {
				"must allow iot:Publish on arn:aws:iot:<region>:<account-id>:topic/sensor-agent/pi-doctor/doctor",
				"${iot:Connection.Thing.ThingName}", "${iot:ClientId}", "never resolve over HTTPS"}},
		},
		{
			name: "a captive portal redirects",
			prepare: func(t *testing.T, f *doctorFixture) {
				if err := f.emu.SetMode(iotemu.Mode{Answer: iotemu.Redirect, Status: http.StatusFound}); err != nil {
					t.Fatal(err)
				}
			},
			marks:  "✓✓✓✓--✓✓✗",
			detail: map[string][]string{doctor.StepPublish: {"302 Found to " + iotemu.DefaultLocation, "the endpoint redirects, which AWS IoT never does", "iot:Data-ATS"}},
			hint:   map[string][]string{doctor.StepPublish: {"did not answer as AWS IoT does"}},
		},
		{
			name:    "ALPN off on the 443-style listener",
			prepare: func(t *testing.T, f *doctorFixture) { f.cfg.alpn = "off" },
			marks:   "✓✓✓✓--✓!✗",
			detail:  map[string][]string{doctor.StepTLS: {"no ALPN offered", "did NOT ask for the client certificate"}, doctor.StepPublish: {"403 Missing Authentication Token"}},
			hint: map[string][]string{
				doctor.StepTLS:     {"asks for the certificate only when ALPN x-amzn-http-ca is offered"},
				doctor.StepPublish: {"only when ALPN x-amzn-http-ca is offered: set endpoint.alpn: auto (or on)"}},
		},
		{
			name: "expired certificate",
			prepare: func(t *testing.T, f *doctorFixture) {
				var err error
				now := time.Now()
				if f.cfg.cert, f.cfg.key, err = f.pki.IssueDeviceValidity(t.TempDir(), "expired", now.Add(-400*24*time.Hour), now.Add(-49*time.Hour)); err != nil {
					t.Fatal(err)
				}
			},
			marks: "✓✗✓✓--✓✗-",
			detail: map[string][]string{
				doctor.StepCert:  {"EXPIRED 2 days ago"},
				doctor.StepClock: {"outside the certificate's validity (see certificate)"},
				doctor.StepTLS:   {"does not accept the client certificate"}},
			hint: map[string][]string{doctor.StepCert: {"aws iot create-keys-and-certificate"}, doctor.StepTLS: {"outside its validity"}},
		},
		{
			name:  "certificate not valid yet, clock not synchronised (a Pi that booted in the past)",
			clock: "unsynced",
			prepare: func(t *testing.T, f *doctorFixture) {
				var err error
				now := time.Now()
				if f.cfg.cert, f.cfg.key, err = f.pki.IssueDeviceValidity(t.TempDir(), "future", now.Add(24*time.Hour), now.Add(400*24*time.Hour)); err != nil {
					t.Fatal(err)
				}
			},
			marks: "✓!✗✓--✓✗-",
			detail: map[string][]string{
				doctor.StepCert:  {"outside its validity by this device's clock", "not synchronised"},
				doctor.StepClock: {"NOT synchronised", "BEFORE the certificate's validity", "TLS fails until the clock is right"}},
			hint: map[string][]string{doctor.StepClock: {"NTP", "UDP port 123"}},
		},
		{
			name: "key file readable by group and other",
			prepare: func(t *testing.T, f *doctorFixture) {
				f.cfg.key = filepath.Join(t.TempDir(), "private.pem.key")
				data, err := os.ReadFile(f.pki.Path(iotemu.DeviceKeyFile))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f.cfg.key, data, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(f.cfg.key, 0o644); err != nil { // whatever the umask
					t.Fatal(err)
				}
			},
			marks:  "✓!✓✓--✓✓✓",
			detail: map[string][]string{doctor.StepCert: {"key mode 0644"}},
			hint:   map[string][]string{doctor.StepCert: {"chown root:sensor-agent ", "chmod 0640 "}},
		},
		{
			name: "config with errors",
			prepare: func(t *testing.T, f *doctorFixture) {
				f.cfg.raw = "device_id: pi-doctor\nendpoint:\n  hots: x\n  port: many\n  cert_file: c\n  key_file: k\nsensors:\n  - name: air\n    driver: sim\n"
			},
			marks:  "✗--------",
			detail: map[string][]string{doctor.StepConfig: {"2 problems in ", "config.yaml:3: endpoint.hots: unknown key", "\n", "config.yaml:4: endpoint.port: wrong type"}, doctor.StepCert: {"needs a valid config"}},
		},
		{
			name: "squid, right credentials",
			prepare: func(t *testing.T, f *doctorFixture) {
				sq := proxytest.StartSquid(t, proxytest.SquidOptions{Users: map[string]string{user: pass}, AllowPorts: []int{alpnPort(t, f)}})
				f.cfg.proxy = "http://" + cred + sq.Addr
			},
			marks: "✓✓✓✓✓✓-✓✓",
			detail: map[string][]string{
				doctor.StepDNS:    {"proxy 127.0.0.1 is an address", "endpoint localhost → 127.0.0.1 (not needed: the proxy resolves it)"},
				doctor.StepProxy:  {"proxy http://alice:xxxxx@127.0.0.1:", "(from endpoint.proxy): reachable at 127.0.0.1:"},
				doctor.StepTunnel: {"CONNECT localhost:", "allowed", `credentials of user "alice" accepted`},
				doctor.StepTCP:    {"through the proxy"},
				doctor.StepTLS:    {"ALPN x-amzn-http-ca", "client certificate sent"},
			},
			secrets: secrets,
		},
		{
			name: "squid, wrong password",
			prepare: func(t *testing.T, f *doctorFixture) {
				sq := proxytest.StartSquid(t, proxytest.SquidOptions{Users: map[string]string{user: pass}, AllowPorts: []int{alpnPort(t, f)}})
				f.cfg.proxy = "http://alice:Wr0ng-Pa55@" + sq.Addr
			},
			marks: "✓✓✓✓✓✗---",
			detail: map[string][]string{
				doctor.StepTunnel: {`the proxy rejected the credentials of user "alice"`, "407 Proxy Authentication Required, offers Basic"},
				doctor.StepTLS:    {"needs the tunnel (see tunnel)"}},
			hint:    map[string][]string{doctor.StepTunnel: {"check the user name and password in endpoint.proxy"}},
			secrets: secrets,
		},
		{
			name: "squid, no credentials",
			prepare: func(t *testing.T, f *doctorFixture) {
				sq := proxytest.StartSquid(t, proxytest.SquidOptions{Users: map[string]string{user: pass}, AllowPorts: []int{alpnPort(t, f)}})
				f.cfg.proxy = sq.URL()
			},
			marks:  "✓✓✓✓✓✗---",
			detail: map[string][]string{doctor.StepTunnel: {"the proxy requires authentication", "407", "no credentials were sent"}},
			hint:   map[string][]string{doctor.StepTunnel: {"endpoint.proxy: http://USER:PASSWORD@host:port"}},
		},
		{
			name: "squid forbids CONNECT to the endpoint's port",
			prepare: func(t *testing.T, f *doctorFixture) {
				sq := proxytest.StartSquid(t, proxytest.SquidOptions{Users: map[string]string{user: pass}, AllowPorts: []int{portNum(t, f.emu.PlainAddr())}})
				f.cfg.proxy = "http://" + cred + sq.Addr
			},
			marks:   "✓✓✓✓✓✗---",
			detail:  map[string][]string{doctor.StepTunnel: {"the proxy forbids CONNECT to localhost:", "403 Forbidden"}},
			hint:    map[string][]string{doctor.StepTunnel: {"ask IT to allow CONNECT to localhost:"}},
			secrets: secrets,
		},
		{
			name: "tinyproxy",
			prepare: func(t *testing.T, f *doctorFixture) {
				f.cfg.proxy = proxytest.StartTinyproxy(t, alpnPort(t, f)).URL()
			},
			marks:  "✓✓✓✓✓✓-✓✓",
			detail: map[string][]string{doctor.StepTunnel: {"no authentication asked"}, doctor.StepTLS: {"ALPN x-amzn-http-ca"}},
		},
		{
			name: "tinyproxy forbids the port",
			prepare: func(t *testing.T, f *doctorFixture) {
				f.cfg.proxy = proxytest.StartTinyproxy(t, portNum(t, f.emu.PlainAddr())).URL()
			},
			marks:  "✓✓✓✓✓✗---",
			detail: map[string][]string{doctor.StepTunnel: {"the proxy forbids CONNECT to localhost:", "403 Access violation"}},
		},
		{
			name: "TLS-inspecting man in the middle",
			prepare: func(t *testing.T, f *doctorFixture) {
				leaf, _ := proxytest.InspectionCA(t, t.TempDir(), "localhost", "127.0.0.1")
				f.cfg.proxy = proxytest.StartMITM(t, leaf).URL()
			},
			marks: "✓✓✓✓✓✓-✗-",
			detail: map[string][]string{doctor.StepTLS: {
				`issued by "Corp Inspection CA" (Example Corp)`, "through proxy http://127.0.0.1:", "a TLS-inspecting proxy or firewall is in the way"}},
			hint: map[string][]string{doctor.StepTLS: {"cannot pass TLS inspection", "ask IT for an inspection bypass (no TLS inspection) for localhost"}},
			check: func(t *testing.T, f *doctorFixture, _ []doctor.Step) {
				if n := f.emu.Connections(); n != 0 {
					t.Errorf("the emulator saw %d connections: the device certificate must not get past the MITM", n)
				}
			},
		},
		{
			name: "proxy unreachable",
			prepare: func(t *testing.T, f *doctorFixture) {
				f.cfg.proxy = fmt.Sprintf("http://%s127.0.0.1:%d", cred, proxytest.FreePort(t))
			},
			marks:   "✓✓✓✓✗----",
			detail:  map[string][]string{doctor.StepProxy: {"proxy http://alice:xxxxx@127.0.0.1:", "is unreachable", "connection refused"}, doctor.StepTunnel: {"needs the proxy"}, doctor.StepTLS: {"needs the tunnel (see proxy)"}},
			hint:    map[string][]string{doctor.StepProxy: {"nothing listens there"}},
			secrets: secrets,
		},
		{
			name: "HTTPS_PROXY from the environment, endpoint only the proxy resolves",
			prepare: func(t *testing.T, f *doctorFixture) {
				fp := proxytest.StartProxy(t, proxytest.ProxyOptions{Answer: func(string) int { return http.StatusForbidden }})
				f.cfg.host, f.cfg.port = "sensor-agent-doctor.test", 443
				f.env = append(f.env, "HTTPS_PROXY=http://bob:hunter2@"+fp.Addr(), "NO_PROXY=example.com")
			},
			marks: "✓✓✓✓✓✗---",
			detail: map[string][]string{
				doctor.StepDNS:    {"endpoint sensor-agent-doctor.test does not resolve here, which is fine: the proxy resolves it"},
				doctor.StepProxy:  {"proxy http://bob:xxxxx@127.0.0.1:", "(from HTTPS_PROXY)"},
				doctor.StepTunnel: {"the proxy forbids CONNECT to sensor-agent-doctor.test:443 (403 Forbidden)"}},
			secrets: []string{"hunter2"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			emu, pki := startEmulator(t, iotemu.Options{})
			f := &doctorFixture{emu: emu, pki: pki, cfg: doctorConfig{
				host: "localhost", port: portNum(t, emu.ALPNAddr()), alpn: "on",
				cert: pki.Path(iotemu.DeviceCertFile), key: pki.Path(iotemu.DeviceKeyFile), ca: pki.Path(iotemu.CAFile),
			}}
			if tc.prepare != nil {
				tc.prepare(t, f)
			}
			clockState := tc.clock
			if clockState == "" {
				clockState = "synced"
			}
			args := append([]string{"-json", "-config", f.cfg.write(t)}, tc.args...)
			r := runDoctor(t, ctx, f.env, clockState == "synced", args...)
			steps := doctorJSON(t, r.stdout)
			defer func() {
				if t.Failed() {
					t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
				}
			}()
			var names []string
			for _, s := range steps {
				names = append(names, s.Step)
			}
			if !slices.Equal(names, doctor.Steps) {
				t.Fatalf("steps %q, want %q", names, doctor.Steps)
			}
			if got := marksOf(steps); got != tc.marks {
				t.Errorf("marks %s, want %s", got, tc.marks)
			}
			wantCode := 0
			if strings.Contains(tc.marks, "✗") {
				wantCode = 1
			}
			if r.code != wantCode {
				t.Errorf("exit status %d, want %d", r.code, wantCode)
			}
			if r.stderr != "" {
				t.Errorf("doctor -json wrote to stderr: %s", r.stderr)
			}
			byName := map[string]doctor.Step{}
			for _, s := range steps {
				byName[s.Step] = s
				if s.Status == doctor.StatusFail && (s.Detail == "" || s.Hint == "") {
					t.Errorf("failed step %s must say what broke and what to do: detail %q, hint %q", s.Step, s.Detail, s.Hint)
				}
				if s.Status == doctor.StatusSkip && s.Detail == "" {
					t.Errorf("skipped step %s gives no reason", s.Step)
				}
				if s.Status != doctor.StatusFail && s.Step != doctor.StepConfig && strings.Contains(s.Detail, "\n") {
					t.Errorf("step %s: detail spans lines: %q", s.Step, s.Detail)
				}
				if s.DurationMS < 0 || (s.Status == doctor.StatusSkip && s.DurationMS != 0) {
					t.Errorf("step %s: duration %v ms", s.Step, s.DurationMS)
				}
			}
			for step, wants := range tc.detail {
				for _, w := range wants {
					if !strings.Contains(byName[step].Detail, w) {
						t.Errorf("%s detail %q\nlacks %q", step, byName[step].Detail, w)
					}
				}
			}
			for step, wants := range tc.hint {
				for _, w := range wants {
					if !strings.Contains(byName[step].Hint, w) {
						t.Errorf("%s hint %q\nlacks %q", step, byName[step].Hint, w)
					}
				}
			}
			for _, s := range tc.secrets {
				if strings.Contains(r.stdout+r.stderr, s) {
					t.Errorf("secret %q shown", s)
				}
			}
			if tc.check != nil {
				tc.check(t, f, steps)
			}
		})
	}
}

// The text form: one line per step with its mark, the failing one naming
// the broken link and what to do on that line, and a summary.
func TestDoctorText(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	emu, pki := startEmulator(t, iotemu.Options{})
	sq := proxytest.StartSquid(t, proxytest.SquidOptions{Users: map[string]string{"alice": "right"}, AllowPorts: []int{portNum(t, emu.ALPNAddr())}})
	for _, tc := range []struct {
		name, proxy string
		code        int
		lines       []string // prefixes of the output's lines, in order
		failing     []string // what the failing line holds
	}{
		{"passing", "http://alice:right@" + sq.Addr, 0,
			[]string{"✓ config", "✓ certificate", "✓ clock", "✓ dns", "✓ proxy", "✓ tunnel", "- tcp", "✓ tls", "✓ publish", "doctor: all checks passed (0 warnings, 1 skipped)"}, nil},
		{"wrong proxy password", "http://alice:wrong@" + sq.Addr, 1,
			[]string{"✓ config", "✓ certificate", "✓ clock", "✓ dns", "✓ proxy", "✗ tunnel", "- tcp", "- tls", "- publish", "doctor: FAILED at tunnel (0 warnings, 3 skipped)"},
			[]string{`rejected the credentials of user "alice"`, " → check the user name and password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := doctorConfig{host: "localhost", port: portNum(t, emu.ALPNAddr()), alpn: "on", proxy: tc.proxy,
				cert: pki.Path(iotemu.DeviceCertFile), key: pki.Path(iotemu.DeviceKeyFile), ca: pki.Path(iotemu.CAFile)}.write(t)
			r := runDoctor(t, ctx, nil, true, "-config", cfg)
			if r.code != tc.code {
				t.Errorf("exit status %d, want %d", r.code, tc.code)
			}
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if len(lines) != len(tc.lines) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tc.lines), r.stdout)
			}
			for i, want := range tc.lines {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d %q does not start with %q", i+1, lines[i], want)
				}
				if strings.Contains(want, "✗") {
					for _, f := range tc.failing {
						if !strings.Contains(lines[i], f) {
							t.Errorf("failing line %q lacks %q", lines[i], f)
						}
					}
				}
			}
			if strings.Contains(r.stdout+r.stderr, "right@") || strings.Contains(r.stdout+r.stderr, "wrong@") {
				t.Errorf("the proxy password is shown:\n%s", r.stdout)
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}
}
