package publisher_test

// Integration tests of the proxy path with real proxies from Debian (squid
// with Basic authentication, tinyproxy) and proxies written in Go (a
// programmable CONNECT proxy and a TLS-inspecting man in the middle), all on
// loopback, against the emulator; publisher/proxytest runs them. Missing
// tools fail the tests under CI=true (CI must install the Debian packages
// squid and tinyproxy) and skip them elsewhere.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
	"github.com/sensor-agent/sensor-agent/publisher/proxytest"
)

// ---- helpers: logs, ports ----

// capturedLogger logs to the test output and to a buffer the test reads.
func capturedLogger(t *testing.T) (*slog.Logger, *proxytest.Buffer) {
	buf := &proxytest.Buffer{}
	h := slog.NewTextHandler(io.MultiWriter(buf, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h), buf
}

// noSecrets fails the test if any of texts holds a secret.
func noSecrets(t *testing.T, secrets []string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("secret %q shown in:\n%s", s, text)
			}
		}
	}
}

// secretsOf lists the forms a proxy password could leak in.
func secretsOf(user, pass string) []string {
	return []string{pass, url.QueryEscape(pass), url.PathEscape(pass), url.UserPassword(user, pass).String(),
		base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
}

func portOf(t *testing.T, addr string) int {
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

func TestAPR1(t *testing.T) {
	// From `htpasswd -nbm alice 's3cr3t:pw'` (apache2-utils).
	if got, want := proxytest.APR1("s3cr3t:pw", "scWZY/a0"), "$apr1$scWZY/a0$Y3IOm1LrT0D9NmWoLlJt5."; got != want {
		t.Errorf("apr1 = %s, want %s", got, want)
	}
}

// ---- configuration through a proxy ----

// viaProxy points at one of the emulator's listeners by the name
// "localhost" (so that SNI is sent) through proxy.
func viaProxy(t *testing.T, s *iotemu.Server, listener, alpn, proxy string) publisher.Config {
	t.Helper()
	cfg := clientConfig(t, s, listener, alpn)
	cfg.Host = "localhost"
	cfg.Proxy = proxy
	return cfg
}

func newLoggedClient(t *testing.T, cfg publisher.Config) (*publisher.Client, *proxytest.Buffer) {
	t.Helper()
	logger, logs := capturedLogger(t)
	c, err := publisher.New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, logs
}

// proxyCase is one publish through a proxy and what must come of it.
type proxyCase struct {
	name      string
	cfg       publisher.Config
	wantOK    bool
	listener  string // where the message must arrive
	wantOffer []string
	// on failure:
	wantReason publisher.ProxyReason
	wantKind   publisher.Kind
	wantErr    []string
}

// runProxyCase publishes once and checks the message (and the ALPN offer
// and SNI the emulator saw) or the error, and that no secret is shown.
func runProxyCase(t *testing.T, s *iotemu.Server, tt proxyCase, secrets []string) {
	t.Helper()
	c, logs := newLoggedClient(t, tt.cfg)
	msgsBefore, hellosBefore := len(s.Messages()), len(s.ClientHellos())
	payload := fmt.Appendf(nil, `{"case":%q}`, tt.name)
	res, err := c.Publish(t.Context(), "sensors/pi/proxy", payload)
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	noSecrets(t, secrets, errText, logs.String())
	if px, _ := c.Proxy(); px != "" && !strings.Contains(logs.String(), "connecting through proxy") {
		t.Errorf("no log line says the proxy %s is used:\n%s", px, logs)
	}
	if tt.wantOK {
		if err != nil {
			t.Fatalf("publish through the proxy: %v", err)
		}
		if res.Status != 200 {
			t.Fatalf("status %d", res.Status)
		}
		msgs := s.Messages()[msgsBefore:]
		if len(msgs) != 1 || !bytes.Equal(msgs[0].Payload, payload) || msgs[0].Listener != tt.listener || msgs[0].ClientCN != "emulated-device" {
			t.Fatalf("emulator got %+v, want the message on the %s listener from emulated-device", msgs, tt.listener)
		}
		hellos := s.ClientHellos()[hellosBefore:]
		if len(hellos) != 1 {
			t.Fatalf("%d handshakes, want 1", len(hellos))
		}
		if !slices.Equal(hellos[0].ALPN, tt.wantOffer) || hellos[0].ServerName != tt.cfg.Host {
			t.Errorf("the emulator saw ALPN %q and SNI %q, want exactly %q and %q: the tunnel must pass the ClientHello untouched",
				hellos[0].ALPN, hellos[0].ServerName, tt.wantOffer, tt.cfg.Host)
		}
		return
	}
	if err == nil {
		t.Fatal("publish succeeded, want an error")
	}
	t.Logf("error (%v): %v", publisher.KindOf(err), err)
	pe, ok := errors.AsType[*publisher.ProxyError](err)
	if !ok {
		t.Fatalf("error %q is not a *ProxyError", err)
	}
	if pe.Reason != tt.wantReason {
		t.Errorf("reason %v, want %v (%v)", pe.Reason, tt.wantReason, err)
	}
	checkKind(t, err, tt.wantKind)
	for _, w := range tt.wantErr {
		if !strings.Contains(errText, w) {
			t.Errorf("error %q\ndoes not contain %q", errText, w)
		}
	}
	if n := len(s.Messages()) - msgsBefore; n != 0 {
		t.Errorf("emulator accepted %d messages", n)
	}
}

// ---- the tests ----

func TestProxySquidBasicAuth(t *testing.T) {
	t.Parallel() // squid takes 2 s to shut down: overlap them
	s := startEmu(t, iotemu.Options{})
	alpnPort, plainPort, deadPort := portOf(t, s.ALPNAddr()), portOf(t, s.PlainAddr()), proxytest.FreePort(t)
	const user, pass = "alice", "p@ss:w0rd%"
	pki := s.PKI()
	sq := proxytest.StartSquid(t, proxytest.SquidOptions{
		Users:      map[string]string{user: pass},
		AllowPorts: []int{alpnPort, plainPort, deadPort},
		TLSCert:    pki.Path(iotemu.ServerCertFile),
		TLSKey:     pki.Path(iotemu.ServerKeyFile),
	})
	cred := url.UserPassword(user, pass).String() + "@"
	right := "http://" + cred + sq.Addr
	redacted := "http://alice:xxxxx@" + sq.Addr
	secrets := append(secretsOf(user, pass), "Wr0ng-Pa55")
	dead := viaProxy(t, s, iotemu.ListenerALPN, "on", right)
	dead.Port = deadPort
	tests := []proxyCase{
		{name: "right credentials, 443-style with ALPN", cfg: viaProxy(t, s, iotemu.ListenerALPN, "on", right),
			wantOK: true, listener: iotemu.ListenerALPN, wantOffer: []string{publisher.ALPNProtocol}},
		{name: "right credentials, 8443-style without ALPN", cfg: viaProxy(t, s, iotemu.ListenerPlain, "off", right),
			wantOK: true, listener: iotemu.ListenerPlain},
		{name: "right credentials, https:// proxy", cfg: viaProxy(t, s, iotemu.ListenerALPN, "on", "https://"+cred+sq.TLSAddr),
			wantOK: true, listener: iotemu.ListenerALPN, wantOffer: []string{publisher.ALPNProtocol}},
		{name: "wrong password", cfg: viaProxy(t, s, iotemu.ListenerALPN, "on", "http://alice:Wr0ng-Pa55@"+sq.Addr),
			wantReason: publisher.ProxyAuthRejected, wantKind: publisher.Auth,
			wantErr: []string{"proxy " + redacted + " (from endpoint.proxy) rejected the credentials of user \"alice\" (407 Proxy Authentication Required, offers Basic)", "check the user name and password"}},
		{name: "unknown user", cfg: viaProxy(t, s, iotemu.ListenerALPN, "on", "http://bob:"+url.PathEscape(pass)+"@"+sq.Addr),
			wantReason: publisher.ProxyAuthRejected, wantKind: publisher.Auth, wantErr: []string{`rejected the credentials of user "bob"`}},
		{name: "no credentials", cfg: viaProxy(t, s, iotemu.ListenerALPN, "on", "http://"+sq.Addr),
			wantReason: publisher.ProxyAuthRequired, wantKind: publisher.Auth,
			wantErr: []string{"proxy http://" + sq.Addr + " (from endpoint.proxy) requires authentication (407 Proxy Authentication Required, offers Basic)",
				"no credentials were given", "http://USER:PASSWORD@host:port"}},
		{name: "proxy cannot reach the endpoint", cfg: dead,
			wantReason: publisher.ProxyUpstreamFailed, wantKind: publisher.Retry,
			wantErr: []string{fmt.Sprintf("proxy %s (from endpoint.proxy) cannot reach localhost:%d (503 Service Unavailable, ERR_CONNECT_FAIL", redacted, deadPort)}},
		{name: "https:// given for the http port", cfg: viaProxy(t, s, iotemu.ListenerALPN, "on", "https://"+cred+sq.Addr),
			wantReason: publisher.ProxyTLSFailed, wantKind: publisher.Auth,
			wantErr: []string{"proxy https://alice:xxxxx@" + sq.Addr + " (from endpoint.proxy): TLS with the proxy failed", "is it an http:// proxy?"}},
		{name: "http:// given for the https port", cfg: viaProxy(t, s, iotemu.ListenerALPN, "on", "http://"+cred+sq.TLSAddr),
			wantReason: publisher.ProxyProtocol, wantKind: publisher.Auth,
			wantErr: []string{"proxy http://alice:xxxxx@" + sq.TLSAddr + " (from endpoint.proxy) did not answer CONNECT like an HTTP proxy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runProxyCase(t, s, tt, secrets) })
	}
}

func TestProxyTinyproxy(t *testing.T) {
	t.Parallel()
	s := startEmu(t, iotemu.Options{})
	alpnPort, plainPort := portOf(t, s.ALPNAddr()), portOf(t, s.PlainAddr())
	deadPort, forbiddenPort := proxytest.FreePort(t), proxytest.FreePort(t)
	addr := proxytest.StartTinyproxy(t, alpnPort, plainPort, deadPort).Addr
	proxy := "http://" + addr
	dead := viaProxy(t, s, iotemu.ListenerALPN, "on", proxy)
	dead.Port = deadPort
	forbidden := viaProxy(t, s, iotemu.ListenerALPN, "on", proxy)
	forbidden.Port = forbiddenPort
	tests := []proxyCase{
		{name: "443-style with ALPN", cfg: viaProxy(t, s, iotemu.ListenerALPN, "on", proxy),
			wantOK: true, listener: iotemu.ListenerALPN, wantOffer: []string{publisher.ALPNProtocol}},
		{name: "8443-style without ALPN", cfg: viaProxy(t, s, iotemu.ListenerPlain, "off", proxy),
			wantOK: true, listener: iotemu.ListenerPlain},
		{name: "port not allowed", cfg: forbidden, wantReason: publisher.ProxyForbidden, wantKind: publisher.Auth,
			wantErr: []string{fmt.Sprintf("proxy %s (from endpoint.proxy) forbids CONNECT to localhost:%d (403 Access violation); ask IT to allow CONNECT to localhost:%d", proxy, forbiddenPort, forbiddenPort)}},
		{name: "proxy cannot reach the endpoint", cfg: dead, wantReason: publisher.ProxyUpstreamFailed, wantKind: publisher.Retry,
			wantErr: []string{fmt.Sprintf("cannot reach localhost:%d (500 Unable to connect)", deadPort)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runProxyCase(t, s, tt, nil) })
	}
}

// A proxy that forbids CONNECT to 443 (here: to the emulator's 443-style
// port): the error says so; with fallback_port the publisher gets through
// on the 8443-style port, without ALPN.
func TestProxyForbids443(t *testing.T) {
	t.Parallel() // squid takes 2 s to shut down: overlap them
	s := startEmu(t, iotemu.Options{})
	alpnPort, plainPort := portOf(t, s.ALPNAddr()), portOf(t, s.PlainAddr())
	sq := proxytest.StartSquid(t, proxytest.SquidOptions{AllowPorts: []int{plainPort}})
	proxy := "http://" + sq.Addr

	t.Run("no fallback", func(t *testing.T) {
		runProxyCase(t, s, proxyCase{name: "forbidden", cfg: viaProxy(t, s, iotemu.ListenerALPN, "on", proxy),
			wantReason: publisher.ProxyForbidden, wantKind: publisher.Auth,
			wantErr: []string{fmt.Sprintf("proxy %s (from endpoint.proxy) forbids CONNECT to localhost:%d (403 Forbidden, ERR_ACCESS_DENIED 0); ask IT to allow CONNECT to localhost:%d", proxy, alpnPort, alpnPort)},
		}, nil)
	})
	t.Run("fallback port", func(t *testing.T) {
		cfg := viaProxy(t, s, iotemu.ListenerALPN, "on", proxy)
		cfg.FallbackPort = plainPort
		c, logs := newLoggedClient(t, cfg)
		msgsBefore, hellosBefore := len(s.Messages()), len(s.ClientHellos())
		for i := range 3 {
			if _, err := c.Publish(t.Context(), "sensors/pi/fallback", fmt.Appendf(nil, `{"i":%d}`, i)); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
		for _, m := range s.Messages()[msgsBefore:] {
			if m.Listener != iotemu.ListenerPlain {
				t.Errorf("message on the %s listener, want %s", m.Listener, iotemu.ListenerPlain)
			}
		}
		hellos := s.ClientHellos()[hellosBefore:]
		if len(hellos) != 1 || hellos[0].Listener != iotemu.ListenerPlain || hellos[0].ALPN != nil {
			t.Errorf("handshakes %+v, want one on the plain listener without ALPN (kept alive)", hellos)
		}
		if got := c.ActivePort(); got != plainPort {
			t.Errorf("ActivePort() = %d, want %d", got, plainPort)
		}
		if n := strings.Count(logs.String(), "is unreachable: publishing on fallback port"); n != 1 {
			t.Errorf("the switch is logged %d times, want once:\n%s", n, logs)
		}
		if !strings.Contains(logs.String(), "forbids CONNECT to localhost:"+strconv.Itoa(alpnPort)) {
			t.Errorf("the switch's log line does not give the reason:\n%s", logs)
		}
	})
}

// The fallback policy with a clock: 443 is tried again every
// FallbackRecheck, and the switch back is logged once.
func TestFallbackRecheck(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	alpnPort, plainPort := portOf(t, s.ALPNAddr()), portOf(t, s.PlainAddr())
	var blocked atomic.Bool
	blocked.Store(true)
	fp := proxytest.StartProxy(t, proxytest.ProxyOptions{Answer: func(target string) int {
		if blocked.Load() && strings.HasSuffix(target, ":"+strconv.Itoa(alpnPort)) {
			return http.StatusForbidden
		}
		return http.StatusOK
	}})
	cfg := viaProxy(t, s, iotemu.ListenerALPN, "on", "http://"+fp.Addr())
	cfg.FallbackPort = plainPort
	c, logs := newLoggedClient(t, cfg)
	var mu sync.Mutex
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	publisher.SetClock(c, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	primary, fallback := "localhost:"+strconv.Itoa(alpnPort), "localhost:"+strconv.Itoa(plainPort)

	steps := []struct {
		name        string
		advance     time.Duration
		unblock     bool
		wantConnect []string // new CONNECTs to the proxy
		wantOn      string   // listener the message arrives on
		wantPort    int
	}{
		{"443 forbidden: fallback", 0, false, []string{primary, fallback}, iotemu.ListenerPlain, plainPort},
		{"stays on the fallback", time.Minute, false, nil, iotemu.ListenerPlain, plainPort},
		{"still on the fallback just before the recheck", publisher.FallbackRecheck - 2*time.Minute, false, nil, iotemu.ListenerPlain, plainPort},
		{"recheck: 443 still forbidden", 2 * time.Minute, false, []string{primary}, iotemu.ListenerPlain, plainPort},
		{"no recheck before the next period", publisher.FallbackRecheck - time.Second, false, nil, iotemu.ListenerPlain, plainPort},
		{"recheck: 443 allowed again", time.Second, true, []string{primary}, iotemu.ListenerALPN, alpnPort},
		{"stays on 443", publisher.FallbackRecheck, false, nil, iotemu.ListenerALPN, alpnPort},
	}
	for i, st := range steps {
		advance(st.advance)
		if st.unblock {
			blocked.Store(false)
		}
		before, msgs := len(fp.Targets()), len(s.Messages())
		if _, err := c.Publish(t.Context(), "sensors/pi/recheck", fmt.Appendf(nil, `{"step":%d}`, i)); err != nil {
			t.Fatalf("step %q: %v", st.name, err)
		}
		if got := fp.Targets()[before:]; !slices.Equal(got, st.wantConnect) {
			t.Errorf("step %q: CONNECTs %q, want %q", st.name, got, st.wantConnect)
		}
		if m := s.Messages()[msgs:]; len(m) != 1 || m[0].Listener != st.wantOn {
			t.Errorf("step %q: messages %+v, want one on %s", st.name, m, st.wantOn)
		}
		if p := c.ActivePort(); p != st.wantPort {
			t.Errorf("step %q: active port %d, want %d", st.name, p, st.wantPort)
		}
	}
	log := logs.String()
	if n := strings.Count(log, "is unreachable: publishing on fallback port"); n != 1 {
		t.Errorf("switch to the fallback logged %d times, want once", n)
	}
	if n := strings.Count(log, "is reachable again: leaving fallback port"); n != 1 {
		t.Errorf("switch back logged %d times, want once", n)
	}
}

// The fallback without a proxy: 443 refuses connections.
func TestFallbackDirect(t *testing.T) {
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Two emulators with one PKI: one serves "443", the other "8443".
	e443 := startEmu(t, iotemu.Options{PKI: pki, PlainAddr: iotemu.Off})
	e8443 := startEmu(t, iotemu.Options{PKI: pki, ALPNAddr: iotemu.Off})
	cfg := clientConfig(t, e443, iotemu.ListenerALPN, "on")
	cfg.FallbackPort = portOf(t, e8443.PlainAddr())
	c, logs := newLoggedClient(t, cfg)
	var mu sync.Mutex
	now := time.Now()
	publisher.SetClock(c, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })

	publish := func() error {
		_, err := c.Publish(t.Context(), "sensors/pi/direct", []byte(`{}`))
		return err
	}
	if err := e443.SetDown(true); err != nil {
		t.Fatal(err)
	}
	if err := publish(); err != nil {
		t.Fatalf("with 443 down: %v", err)
	}
	if n := len(e8443.Messages()); n != 1 {
		t.Fatalf("the 8443 emulator has %d messages, want 1", n)
	}
	if h := e8443.ClientHellos(); len(h) != 1 || h[0].ALPN != nil {
		t.Errorf("8443 handshakes %+v, want one without ALPN", h)
	}

	// Both down: the error names both ports.
	if err := e8443.SetDown(true); err != nil {
		t.Fatal(err)
	}
	e8443.CloseIdle()
	mu.Lock()
	now = now.Add(publisher.FallbackRecheck)
	mu.Unlock()
	err = publish()
	checkKind(t, err, publisher.Retry)
	for _, w := range []string{fmt.Sprintf("port %d: connect to %s", cfg.Port, e443.ALPNAddr()),
		fmt.Sprintf("fallback port %d: connect to %s", cfg.FallbackPort, e8443.PlainAddr())} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v is not ECONNREFUSED", err)
	}

	// 443 is back: the next recheck returns to it.
	if err := e443.SetDown(false); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(publisher.FallbackRecheck)
	mu.Unlock()
	if err := publish(); err != nil {
		t.Fatalf("with 443 back: %v", err)
	}
	if n := len(e443.Messages()); n != 1 {
		t.Errorf("the 443 emulator has %d messages, want 1", n)
	}
	if p := c.ActivePort(); p != cfg.Port {
		t.Errorf("active port %d, want %d", p, cfg.Port)
	}
	if !strings.Contains(logs.String(), "is reachable again") {
		t.Errorf("the return to %d is not logged:\n%s", cfg.Port, logs)
	}
}

func TestProxyTLSInspection(t *testing.T) {
	const awsHost = "abc123-ats.iot.us-west-2.amazonaws.com"
	s := startEmu(t, iotemu.Options{})
	dir := t.TempDir()
	leaf, inspectionCAFile := proxytest.InspectionCA(t, dir, "localhost", "127.0.0.1", awsHost)
	// A trust store that includes the inspection CA, as on a managed host.
	emuCA, err := os.ReadFile(s.PKI().Path(iotemu.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	inspCA, err := os.ReadFile(inspectionCAFile)
	if err != nil {
		t.Fatal(err)
	}
	bothCAs := filepath.Join(dir, "both.pem")
	if err := os.WriteFile(bothCAs, append(emuCA, inspCA...), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		host     string
		caFile   string
		verified bool
		want     []string
	}{
		{"inspection CA not trusted", "localhost", "", false, []string{
			"server certificate of localhost:", "(through proxy http://127.0.0.1:", "is not trusted: it was issued by \"Corp Inspection CA\" (Example Corp)",
			"a TLS-inspecting proxy or firewall is in the way", "mutual TLS (the device certificate) cannot pass TLS inspection",
			"ask IT for an inspection bypass (no TLS inspection) for localhost"}},
		{"inspection CA trusted, AWS host", awsHost, bothCAs, true, []string{
			"server certificate of " + awsHost + ":", "was issued by \"Corp Inspection CA\" (Example Corp), not by Amazon",
			"a TLS-inspecting proxy or firewall is in the way (its CA is in this device's trust store)",
			"ask IT for an inspection bypass (no TLS inspection) for " + awsHost}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := proxytest.StartMITM(t, leaf)
			cfg := viaProxy(t, s, iotemu.ListenerALPN, "on", "http://"+fp.Addr())
			cfg.Host = tt.host
			if tt.caFile != "" {
				cfg.CAFile = tt.caFile
			}
			c, _ := newLoggedClient(t, cfg)
			conns := s.Connections()
			_, err := c.Publish(t.Context(), "sensors/pi/inspected", []byte(`{}`))
			if err == nil {
				t.Fatal("publish through a TLS-inspecting proxy succeeded")
			}
			ie, ok := errors.AsType[*publisher.InspectionError](err)
			if !ok {
				t.Fatalf("error %q is not an *InspectionError", err)
			}
			if ie.Verified != tt.verified || !strings.Contains(ie.Issuer, "Corp Inspection CA") {
				t.Errorf("InspectionError %+v: want Verified=%v and the issuer named", ie, tt.verified)
			}
			checkKind(t, err, publisher.Auth)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if !tt.verified {
				if _, ok := errors.AsType[x509.UnknownAuthorityError](err); !ok {
					t.Errorf("error %v does not wrap x509.UnknownAuthorityError", err)
				}
			}
			if n := s.Connections() - conns; n != 0 {
				t.Errorf("the emulator saw %d connections, want 0", n)
			}
			select {
			case r := <-fp.MITMResults():
				if r.Err == nil || r.ClientCerts != 0 {
					t.Errorf("the MITM's handshake ended with %v and %d client certificates: want it aborted before the device certificate was sent", r.Err, r.ClientCerts)
				}
			case <-time.After(10 * time.Second):
				t.Error("the MITM never finished its handshake with the client")
			}
		})
	}
}

func TestProxyUnreachable(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	port := proxytest.FreePort(t)
	cfg := viaProxy(t, s, iotemu.ListenerALPN, "on", fmt.Sprintf("http://alice:hunter2@127.0.0.1:%d", port))
	cfg.FallbackPort = portOf(t, s.PlainAddr()) // no help: the proxy is the broken link
	c, logs := newLoggedClient(t, cfg)
	_, err := c.Publish(t.Context(), "sensors/pi/x", []byte(`{}`))
	checkErr(t, err, fmt.Sprintf("proxy http://alice:xxxxx@127.0.0.1:%d (from endpoint.proxy) is unreachable", port))
	checkKind(t, err, publisher.Retry)
	if pe, ok := errors.AsType[*publisher.ProxyError](err); !ok || pe.Reason != publisher.ProxyUnreachable {
		t.Errorf("error %v: want a ProxyError ProxyUnreachable", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v is not ECONNREFUSED", err)
	}
	if strings.Contains(err.Error(), "fallback") || c.ActivePort() != cfg.Port {
		t.Errorf("an unreachable proxy must not switch ports: %v", err)
	}
	noSecrets(t, secretsOf("alice", "hunter2"), err.Error(), logs.String())
}

func TestProxySilentNamesTheStage(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	fp := proxytest.StartProxy(t, proxytest.ProxyOptions{Silent: true})
	cfg := viaProxy(t, s, iotemu.ListenerALPN, "on", "http://"+fp.Addr())
	cfg.Timeout = 300 * time.Millisecond
	c, _ := newLoggedClient(t, cfg)
	_, err := c.Publish(t.Context(), "sensors/pi/x", []byte(`{}`))
	checkErr(t, err, fmt.Sprintf("no reply from localhost:%d within 300ms: still waiting for proxy http://%s to open a tunnel to localhost:%d (CONNECT)",
		cfg.Port, fp.Addr(), cfg.Port))
	checkKind(t, err, publisher.Retry)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is not DeadlineExceeded", err)
	}
}

func TestProxyFromEnvironmentVariables(t *testing.T) {
	const awsHost = "abc123-ats.iot.us-west-2.amazonaws.com"
	fp := proxytest.StartProxy(t, proxytest.ProxyOptions{Answer: func(string) int { return http.StatusForbidden }})
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := publisher.Config{Host: awsHost, Port: 443, CertFile: pki.Path(iotemu.DeviceCertFile), KeyFile: pki.Path(iotemu.DeviceKeyFile), Timeout: 5 * time.Second}
	t.Setenv("HTTPS_PROXY", "http://bob:hunter2@"+fp.Addr())
	t.Setenv("NO_PROXY", "example.com")

	c, logs := newLoggedClient(t, base)
	if px, src := c.Proxy(); px != "http://bob:xxxxx@"+fp.Addr() || src != "HTTPS_PROXY" {
		t.Errorf("Proxy() = %q, %q", px, src)
	}
	// The endpoint's name is resolved by the proxy, not here.
	_, err = c.Publish(t.Context(), "sensors/pi/x", []byte(`{}`))
	checkErr(t, err, "proxy http://bob:xxxxx@"+fp.Addr()+" (from HTTPS_PROXY) forbids CONNECT to "+awsHost+":443 (403 Forbidden)")
	targets, auth := fp.Targets(), fp.Auth()
	if len(targets) != 1 || targets[0] != awsHost+":443" ||
		auth[0] != "Basic "+base64.StdEncoding.EncodeToString([]byte("bob:hunter2")) {
		t.Errorf("proxy saw CONNECT %q with Proxy-Authorization %q", targets, auth)
	}
	noSecrets(t, secretsOf("bob", "hunter2"), err.Error(), logs.String())

	tests := []struct {
		name, noProxy, host, configProxy string
		wantProxy, wantSource            string
	}{
		{"NO_PROXY matches", ".amazonaws.com", awsHost, "", "", ""},
		{"loopback is never proxied", "", "127.0.0.1", "", "", ""},
		{"endpoint.proxy wins", ".amazonaws.com", awsHost, "http://proxy.corp:3128", "http://proxy.corp:3128", "endpoint.proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NO_PROXY", tt.noProxy)
			cfg := base
			cfg.Host, cfg.Proxy = tt.host, tt.configProxy
			c, _ := newLoggedClient(t, cfg)
			if px, src := c.Proxy(); px != tt.wantProxy || src != tt.wantSource {
				t.Errorf("Proxy() = %q, %q, want %q, %q", px, src, tt.wantProxy, tt.wantSource)
			}
		})
	}
}
