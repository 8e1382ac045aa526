package publisher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// fastRetry retries at once in practice: tests wait for replies, not time.
var fastRetry = publisher.Backoff{Min: time.Microsecond, Max: time.Microsecond}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startEmu starts an emulator whose PKI files live in a temporary directory.
func startEmu(t *testing.T, opts iotemu.Options) *iotemu.Server {
	t.Helper()
	if opts.PKI == nil {
		pki, err := iotemu.NewPKI(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		opts.PKI = pki
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := iotemu.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// clientConfig points at one of the emulator's listeners with its device
// certificate.
func clientConfig(t *testing.T, s *iotemu.Server, listener, alpn string) publisher.Config {
	t.Helper()
	addr := s.PlainAddr()
	if listener == iotemu.ListenerALPN {
		addr = s.ALPNAddr()
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	pki := s.PKI()
	return publisher.Config{
		Host:     host,
		Port:     port,
		ALPN:     alpn,
		CertFile: pki.Path(iotemu.DeviceCertFile),
		KeyFile:  pki.Path(iotemu.DeviceKeyFile),
		CAFile:   pki.Path(iotemu.CAFile),
		Timeout:  10 * time.Second,
		QoS:      1,
	}
}

func newClient(t *testing.T, cfg publisher.Config) *publisher.Client {
	t.Helper()
	c, err := publisher.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func checkKind(t *testing.T, err error, want publisher.Kind) {
	t.Helper()
	if got := publisher.KindOf(err); got != want {
		t.Fatalf("KindOf(%v) = %v, want %v", err, got, want)
	}
}

func TestNewConfigErrors(t *testing.T) {
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, key, ca := pki.Path(iotemu.DeviceCertFile), pki.Path(iotemu.DeviceKeyFile), pki.Path(iotemu.CAFile)
	otherCert, otherKey, err := iotemu.NewUntrustedClient(dir)
	if err != nil {
		t.Fatal(err)
	}
	garbage := write("garbage.pem", "hello\n")
	encrypted := write("enc.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
	base := publisher.Config{Host: "example.com", Port: 8443, CertFile: cert, KeyFile: key, CAFile: ca}

	tests := []struct {
		name    string
		mutate  func(*publisher.Config)
		wantErr string
	}{
		{"valid", func(*publisher.Config) {}, ""},
		{"valid without CA file", func(c *publisher.Config) { c.CAFile = "" }, ""},
		{"no host", func(c *publisher.Config) { c.Host = "" }, "host is empty"},
		{"bad port", func(c *publisher.Config) { c.Port = 0 }, "port 0"},
		{"bad alpn", func(c *publisher.Config) { c.ALPN = "yes" }, `alpn "yes"`},
		{"bad qos", func(c *publisher.Config) { c.QoS = 2 }, "qos 2"},
		{"no cert", func(c *publisher.Config) { c.CertFile = "" }, "certificate file is not set"},
		{"missing cert", func(c *publisher.Config) { c.CertFile = filepath.Join(dir, "nope.pem") }, "nope.pem"},
		{"cert not PEM", func(c *publisher.Config) { c.CertFile = garbage }, "garbage.pem: not PEM"},
		{"key not PEM", func(c *publisher.Config) { c.KeyFile = garbage }, "garbage.pem: not PEM"},
		{"swapped", func(c *publisher.Config) { c.CertFile, c.KeyFile = key, cert }, "swapped"},
		{"key does not match", func(c *publisher.Config) { c.KeyFile = otherKey }, "does not match certificate"},
		{"other pair is fine", func(c *publisher.Config) { c.CertFile, c.KeyFile = otherCert, otherKey }, ""},
		{"encrypted key", func(c *publisher.Config) { c.KeyFile = encrypted }, "encrypted"},
		{"CA file without certificates", func(c *publisher.Config) { c.CAFile = garbage }, "no PEM certificates"},
		{"missing CA file", func(c *publisher.Config) { c.CAFile = filepath.Join(dir, "none.pem") }, "none.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mutate(&cfg)
			c, err := publisher.New(cfg, nil)
			checkErr(t, err, tt.wantErr)
			if c != nil {
				c.Close()
			}
		})
	}
}

func TestALPNAuto(t *testing.T) {
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		port int
		alpn string
		want bool
	}{
		{443, "", true},
		{443, "auto", true},
		{8443, "auto", false},
		{8443, "on", true},
		{443, "off", false},
		{443, "OFF", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%s", tt.port, tt.alpn), func(t *testing.T) {
			c := newClient(t, publisher.Config{Host: "h", Port: tt.port, ALPN: tt.alpn,
				CertFile: pki.Path(iotemu.DeviceCertFile), KeyFile: pki.Path(iotemu.DeviceKeyFile)})
			if c.ALPN() != tt.want {
				t.Errorf("ALPN() = %v, want %v", c.ALPN(), tt.want)
			}
		})
	}
}

func TestPublishListeners(t *testing.T) {
	tests := []struct {
		name      string
		listener  string
		alpn      string
		wantOffer []string
		wantErr   string
		wantKind  publisher.Kind
	}{
		{"443-style with ALPN", iotemu.ListenerALPN, "on", []string{publisher.ALPNProtocol}, "", 0},
		{"443-style without ALPN", iotemu.ListenerALPN, "off", nil,
			"403 ForbiddenException: Missing Authentication Token (traceId ", publisher.Auth},
		{"8443-style without ALPN", iotemu.ListenerPlain, "off", nil, "", 0},
		{"8443-style with ALPN", iotemu.ListenerPlain, "on", []string{publisher.ALPNProtocol}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startEmu(t, iotemu.Options{})
			c := newClient(t, clientConfig(t, s, tt.listener, tt.alpn))
			payload := []byte(`{"t":21.5}`)
			res, err := c.Publish(t.Context(), "sensors/pi/temp", payload)
			checkErr(t, err, tt.wantErr)
			hellos := s.ClientHellos()
			if len(hellos) != 1 {
				t.Fatalf("%d handshakes, want 1", len(hellos))
			}
			if got := hellos[0].ALPN; !equalStrings(got, tt.wantOffer) {
				t.Errorf("client offered ALPN %q, want exactly %q", got, tt.wantOffer)
			}
			if err != nil {
				checkKind(t, err, tt.wantKind)
				if !strings.Contains(err.Error(), "x-amzn-http-ca") {
					t.Errorf("error %q lacks the ALPN hint", err)
				}
				if n := len(s.Messages()); n != 0 {
					t.Errorf("emulator accepted %d messages, want 0", n)
				}
				return
			}
			if res.Status != 200 || res.TraceID == "" || res.RequestID != res.TraceID {
				t.Errorf("result %+v: want status 200 and traceId == requestId", res)
			}
			msgs := s.Messages()
			if len(msgs) != 1 {
				t.Fatalf("emulator has %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.Topic != "sensors/pi/temp" || m.QoS != 1 || !bytes.Equal(m.Payload, payload) ||
				m.RequestID != res.RequestID || m.Listener != tt.listener || m.ClientCN != "emulated-device" {
				t.Errorf("message %+v does not match the publish", m)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPublishEncodesTopicAsOneSegment(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	c := newClient(t, clientConfig(t, s, iotemu.ListenerALPN, "on"))
	tests := []struct{ topic, wantPath string }{
		{"sensors/pi/temp", "/topics/sensors%2Fpi%2Ftemp"},
		{"/lead//double/", "/topics/%2Flead%2F%2Fdouble%2F"},
		{"$aws/rules/ingest/pi", "/topics/$aws%2Frules%2Fingest%2Fpi"},
		{"a b/100%/x?y", "/topics/a%20b%2F100%25%2Fx%3Fy"},
		{"café/..", "/topics/caf%C3%A9%2F.."},
	}
	for i, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			if _, err := c.Publish(t.Context(), tt.topic, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			m := s.Messages()[i]
			if m.RawPath != tt.wantPath || m.Topic != tt.topic {
				t.Errorf("emulator saw path %q topic %q, want %q and %q", m.RawPath, m.Topic, tt.wantPath, tt.topic)
			}
		})
	}
}

func TestPublishRefusedTLS(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	untrustedCert, untrustedKey, err := iotemu.NewUntrustedClient(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		listener string
		alpn     string
		mutate   func(*publisher.Config)
		wantErr  string
	}{
		{"untrusted client cert on 8443-style", iotemu.ListenerPlain, "off",
			func(c *publisher.Config) { c.CertFile, c.KeyFile = untrustedCert, untrustedKey }, "refused the TLS handshake"},
		{"untrusted client cert on 443-style", iotemu.ListenerALPN, "on",
			func(c *publisher.Config) { c.CertFile, c.KeyFile = untrustedCert, untrustedKey }, "refused the TLS handshake"},
		{"server not trusted", iotemu.ListenerPlain, "off",
			func(c *publisher.Config) { c.CAFile = "" }, "not trusted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clientConfig(t, s, tt.listener, tt.alpn)
			tt.mutate(&cfg)
			c := newClient(t, cfg)
			before := len(s.Messages())
			_, err := c.Publish(t.Context(), "sensors/pi/temp", []byte("{}"))
			checkErr(t, err, tt.wantErr)
			checkKind(t, err, publisher.Auth)
			if n := len(s.Messages()); n != before {
				t.Errorf("emulator accepted a message from a refused client")
			}
		})
	}
}

func TestKeepAliveReusesOneConnection(t *testing.T) {
	for _, listener := range []string{iotemu.ListenerALPN, iotemu.ListenerPlain} {
		t.Run(listener, func(t *testing.T) {
			s := startEmu(t, iotemu.Options{})
			c := newClient(t, clientConfig(t, s, listener, map[string]string{iotemu.ListenerALPN: "on", iotemu.ListenerPlain: "off"}[listener]))
			for i := range 50 {
				if _, err := c.Publish(t.Context(), "sensors/pi/seq", fmt.Appendf(nil, `{"i":%d}`, i)); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			if h, n := s.Handshakes(), s.Connections(); h != 1 || n != 1 {
				t.Errorf("%d handshakes over %d connections for 50 publishes, want 1 and 1", h, n)
			}
			if n := len(s.Messages()); n != 50 {
				t.Errorf("emulator has %d messages, want 50", n)
			}
		})
	}
}

func TestReconnectAfterServerClosesIdle(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	c := newClient(t, clientConfig(t, s, iotemu.ListenerALPN, "on"))
	for round := 1; round <= 3; round++ {
		if _, err := c.Publish(t.Context(), "sensors/pi/x", []byte("{}")); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if h := s.Handshakes(); h != round {
			t.Fatalf("round %d: %d handshakes, want %d", round, h, round)
		}
		s.CloseIdle()
	}
	// Whether the client noticed the close before writing or had to
	// resend, each message must have arrived exactly once.
	if n := len(s.Messages()); n != 3 {
		t.Errorf("emulator has %d messages, want 3", n)
	}
}

func TestPublishRetry(t *testing.T) {
	tests := []struct {
		name         string
		fault        func(*iotemu.Server)
		maxAttempts  int
		wantKind     publisher.Kind // 0: success
		wantErr      string
		wantRequests int
		wantMessages int
	}{
		{"429 then ok", func(s *iotemu.Server) { s.FailNext(429, 2) }, 5, 0, "", 3, 1},
		{"500 then ok", func(s *iotemu.Server) { s.FailNext(500, 1) }, 5, 0, "", 2, 1},
		{"502 then ok", func(s *iotemu.Server) { s.FailNext(502, 1) }, 5, 0, "", 2, 1},
		{"503 then ok", func(s *iotemu.Server) { s.FailNext(503, 3) }, 5, 0, "", 4, 1},
		{"504 then ok", func(s *iotemu.Server) { s.FailNext(504, 1) }, 5, 0, "", 2, 1},
		{"mixed then ok", func(s *iotemu.Server) { s.FailNext(429, 1); s.FailNext(500, 1); s.FailNext(503, 1) }, 5, 0, "", 4, 1},
		{"lost reply is resent: at-least-once", func(s *iotemu.Server) { s.LoseReplies(1) }, 5, 0, "", 2, 2},
		{"gives up", func(s *iotemu.Server) { s.FailNext(503, 10) }, 3, publisher.Retry,
			"503 ServiceUnavailableException: Service unavailable", 3, 0},
		{"400 not retried", func(s *iotemu.Server) { s.FailNext(400, 5) }, 5, publisher.Permanent, "400 InvalidRequestException", 1, 0},
		{"405 not retried, not permanent", func(s *iotemu.Server) { s.FailNext(405, 5) }, 5, publisher.Auth, "405 MethodNotAllowedException", 1, 0},
		{"413 not retried", func(s *iotemu.Server) { s.FailNext(413, 5) }, 5, publisher.Permanent, "split the payload", 1, 0},
		{"404 not retried, not permanent", func(s *iotemu.Server) { s.FailNext(404, 5) }, 5, publisher.Auth, "no AWS IoT publish path", 1, 0},
		{"401 not retried", func(s *iotemu.Server) { s.FailNext(401, 5) }, 5, publisher.Auth, "401 UnauthorizedException", 1, 0},
		{"403 not retried", func(s *iotemu.Server) { s.FailNext(403, 5) }, 5, publisher.Auth, "iot:Publish", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startEmu(t, iotemu.Options{})
			c := newClient(t, clientConfig(t, s, iotemu.ListenerALPN, "on"))
			tt.fault(s)
			res, err := c.PublishRetry(t.Context(), "sensors/pi/x", []byte(`{"v":1}`), fastRetry, tt.maxAttempts)
			if tt.wantKind == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != 200 {
					t.Errorf("status %d, want 200", res.Status)
				}
			} else {
				checkErr(t, err, tt.wantErr)
				checkKind(t, err, tt.wantKind)
			}
			if n := s.Requests(); n != tt.wantRequests {
				t.Errorf("emulator saw %d requests, want %d", n, tt.wantRequests)
			}
			if n := len(s.Messages()); n != tt.wantMessages {
				t.Errorf("emulator has %d messages, want %d", n, tt.wantMessages)
			}
		})
	}
}

// A reply lost on a kept-alive connection looks like the server having closed
// it: Publish resends once on a fresh connection by itself.
func TestPublishResendsOnReusedConnection(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	c := newClient(t, clientConfig(t, s, iotemu.ListenerALPN, "on"))
	if _, err := c.Publish(t.Context(), "sensors/pi/x", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	s.LoseReplies(1)
	if _, err := c.Publish(t.Context(), "sensors/pi/x", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	if n, h := len(s.Messages()), s.Handshakes(); n != 3 || h != 2 {
		t.Errorf("%d messages over %d handshakes, want 3 (one duplicate) and 2", n, h)
	}
}

func TestPublishLostReplyOnFreshConnection(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	c := newClient(t, clientConfig(t, s, iotemu.ListenerPlain, "off"))
	s.LoseReplies(1)
	_, err := c.Publish(t.Context(), "sensors/pi/x", []byte("{}"))
	checkErr(t, err, "lost before the reply")
	checkKind(t, err, publisher.Retry)
	if n := len(s.Messages()); n != 1 {
		t.Errorf("emulator has %d messages, want 1 (delivered, reply lost)", n)
	}
}

func TestPublishRejectedBeforeSending(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	c := newClient(t, clientConfig(t, s, iotemu.ListenerALPN, "on"))
	tests := []struct {
		name    string
		topic   string
		size    int
		wantErr string
	}{
		{"payload over 128 KB", "sensors/pi/x", publisher.MaxPayload + 1, "131073 bytes, limit is 131072"},
		{"wildcard topic", "sensors/+/x", 10, "wildcard"},
		{"reserved topic", "$aws/things/x/shadow/update", 10, "reserved"},
		{"empty topic", "", 10, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.PublishRetry(t.Context(), tt.topic, make([]byte, tt.size), fastRetry, 5)
			checkErr(t, err, tt.wantErr)
			checkKind(t, err, publisher.Permanent)
			if n := s.Requests(); n != 0 {
				t.Errorf("client sent %d requests, want 0", n)
			}
		})
	}
	// The limit itself is fine.
	if _, err := c.Publish(t.Context(), "sensors/pi/x", bytes.Repeat([]byte("a"), publisher.MaxPayload)); err != nil {
		t.Fatalf("payload of exactly %d bytes: %v", publisher.MaxPayload, err)
	}
}

func TestPublishServerDown(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	c := newClient(t, clientConfig(t, s, iotemu.ListenerALPN, "on"))
	if _, err := c.Publish(t.Context(), "sensors/pi/x", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDown(true); err != nil {
		t.Fatal(err)
	}
	_, err := c.Publish(t.Context(), "sensors/pi/x", []byte("{}"))
	checkErr(t, err, "connect to")
	checkKind(t, err, publisher.Retry)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v is not ECONNREFUSED", err)
	}
	if err := s.SetDown(false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(t.Context(), "sensors/pi/x", []byte("{}")); err != nil {
		t.Fatalf("after the emulator came back: %v", err)
	}
	if n := len(s.Messages()); n != 2 {
		t.Errorf("emulator has %d messages, want 2", n)
	}
}

func TestPublishTimeout(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	cfg := clientConfig(t, s, iotemu.ListenerALPN, "on")
	cfg.Timeout = 100 * time.Millisecond
	c := newClient(t, cfg)
	s.SetDelay(time.Hour)
	_, err := c.Publish(t.Context(), "sensors/pi/x", []byte("{}"))
	checkErr(t, err, "no reply from")
	checkKind(t, err, publisher.Retry)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is not DeadlineExceeded", err)
	}
	// The emulator accepted the message before stalling: a timeout does not
	// mean the message was not delivered.
	if n := len(s.Messages()); n != 1 {
		t.Errorf("emulator has %d messages, want 1", n)
	}
}

func TestPublishRetryStopsWhenContextEnds(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	c := newClient(t, clientConfig(t, s, iotemu.ListenerALPN, "on"))
	s.FailNext(503, 10)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancelling from Rand, which Delay calls just before PublishRetry
	// waits, makes the cancellation land during the wait.
	b := publisher.Backoff{Min: time.Hour, Max: time.Hour, Jitter: 1, Rand: func() float64 {
		cancel()
		return 0.5
	}}
	_, err := c.PublishRetry(ctx, "sensors/pi/x", []byte("{}"), b, 0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v is not context.Canceled", err)
	}
	checkErr(t, err, "503 ServiceUnavailableException")
	checkKind(t, err, publisher.Retry)
	if n := s.Requests(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestPublishConcurrent(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	c := newClient(t, clientConfig(t, s, iotemu.ListenerALPN, "on"))
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				_, err := c.PublishRetry(t.Context(), fmt.Sprintf("sensors/g%d", g), fmt.Appendf(nil, `{"i":%d}`, i), fastRetry, 3)
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(s.Messages()); n != 40 {
		t.Errorf("emulator has %d messages, want 40", n)
	}
}
