package publisher_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
	"github.com/sensor-agent/sensor-agent/publisher/proxytest"
)

func newProber(t *testing.T, cfg publisher.Config, port int) *publisher.Prober {
	t.Helper()
	p, err := publisher.NewProber(cfg, port, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func devicePair(t *testing.T, cfg publisher.Config) *tls.Certificate {
	t.Helper()
	pair, err := publisher.LoadKeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &pair
}

// The whole walk, direct, on one connection: TCP, TLS, a publish.
func TestProberDirect(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	cfg := clientConfig(t, s, iotemu.ListenerALPN, "on")
	cfg.Host = "localhost"
	p := newProber(t, cfg, 0)
	if _, ok := p.Proxy(); ok {
		t.Fatal("Proxy() says a proxy is used for a loopback endpoint")
	}
	conn, err := p.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tc, info, err := p.Handshake(t.Context(), conn, devicePair(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if info.ALPN != publisher.ALPNProtocol || !slices.Equal(info.ALPNOffered, []string{publisher.ALPNProtocol}) ||
		info.ServerName != "localhost" || !info.ClientCertRequested || info.Version == "" {
		t.Errorf("TLSInfo %+v", info)
	}
	if len(info.Chain) != 1 || info.Chain[0].Subject != "localhost" || info.Chain[0].Issuer != "sensor-agent emulator CA" ||
		info.Root != "sensor-agent emulator CA" || info.AmazonRoot || info.AmazonHost {
		t.Errorf("chain %+v, root %q, amazon %v/%v", info.Chain, info.Root, info.AmazonRoot, info.AmazonHost)
	}
	res, err := p.Publish(t.Context(), tc, "sensors/pi/doctor", []byte(`{"doctor":true}`))
	if err != nil || res.Status != 200 || res.TraceID == "" {
		t.Fatalf("Publish = %+v, %v", res, err)
	}
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].Topic != "sensors/pi/doctor" || string(msgs[0].Payload) != `{"doctor":true}` {
		t.Errorf("emulator got %+v", msgs)
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("%d connections, want the one of the walk", n)
	}
}

func TestProberTunnel(t *testing.T) {
	t.Parallel() // squid takes 2 s to shut down
	s := startEmu(t, iotemu.Options{})
	sq := proxytest.StartSquid(t, proxytest.SquidOptions{Users: map[string]string{"alice": "right"}, AllowPorts: []int{portOf(t, s.ALPNAddr())}})
	tests := []struct {
		name       string
		proxy      string
		wantReason publisher.ProxyReason // 0: the tunnel opens
		reached    bool
	}{
		{"right credentials", "http://alice:right@" + sq.Addr, 0, true},
		{"wrong password", "http://alice:wrong@" + sq.Addr, publisher.ProxyAuthRejected, true},
		{"no credentials", sq.URL(), publisher.ProxyAuthRequired, true},
		{"proxy unreachable", "http://alice:right@127.0.0.1:" + strconv.Itoa(proxytest.FreePort(t)), publisher.ProxyUnreachable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := viaProxy(t, s, iotemu.ListenerALPN, "on", tt.proxy)
			p := newProber(t, cfg, 0)
			info, ok := p.Proxy()
			if !ok || info.Source != "endpoint.proxy" || info.Host != "127.0.0.1" || strings.Contains(info.URL, "right") {
				t.Fatalf("Proxy() = %+v, %v", info, ok)
			}
			conn, res, err := p.Tunnel(t.Context())
			if (res.ProxyReached > 0) != tt.reached {
				t.Errorf("ProxyReached %v, want reached=%v", res.ProxyReached, tt.reached)
			}
			if tt.wantReason != 0 {
				pe, ok := errors.AsType[*publisher.ProxyError](err)
				if !ok || pe.Reason != tt.wantReason {
					t.Fatalf("Tunnel error %v, want a ProxyError %v", err, tt.wantReason)
				}
				if strings.Contains(err.Error(), "right") || strings.Contains(err.Error(), "wrong") {
					t.Errorf("the password is shown: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.ProxyAddr != sq.Addr {
				t.Errorf("ProxyAddr %q, want %q", res.ProxyAddr, sq.Addr)
			}
			tc, info2, err := p.Handshake(t.Context(), conn, devicePair(t, cfg))
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			if info2.ALPN != publisher.ALPNProtocol {
				t.Errorf("ALPN %q through the tunnel", info2.ALPN)
			}
			if _, err := p.Publish(t.Context(), tc, "sensors/pi/doctor", []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A client certificate the server refuses: with TLS 1.3 the refusal
// arrives after the client's handshake, as an alert at the first read.
func TestProberRefusedCertificate(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	cfg := clientConfig(t, s, iotemu.ListenerALPN, "on")
	var err error
	if cfg.CertFile, cfg.KeyFile, err = iotemu.NewUntrustedClient(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	p := newProber(t, cfg, 0)
	conn, err := p.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tc, _, err := p.Handshake(t.Context(), conn, devicePair(t, cfg))
	if err == nil {
		defer tc.Close()
		_, err = p.Publish(t.Context(), tc, "sensors/pi/doctor", []byte(`{}`))
		if pe, ok := errors.AsType[*publisher.Error](err); !ok || pe.Status != 0 || pe.Kind != publisher.Auth {
			t.Errorf("Publish error %v: want an *Error of kind auth without a status", err)
		}
	}
	alert, ok := publisher.ServerAlert(err)
	if !ok || alert != 42 {
		t.Fatalf("error %v: want the server's alert bad certificate (42), got %v %v", err, alert, ok)
	}
	if len(s.Messages()) != 0 {
		t.Error("the emulator accepted a message")
	}
}

func TestProberInspection(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	leaf, _ := proxytest.InspectionCA(t, t.TempDir(), "localhost")
	mitm := proxytest.StartMITM(t, leaf)
	cfg := viaProxy(t, s, iotemu.ListenerALPN, "on", mitm.URL())
	p := newProber(t, cfg, 0)
	conn, _, err := p.Tunnel(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, info, err := p.Handshake(t.Context(), conn, devicePair(t, cfg))
	ie, ok := errors.AsType[*publisher.InspectionError](err)
	if !ok || !strings.Contains(ie.Issuer, "Corp Inspection CA") || ie.Proxy != mitm.URL() {
		t.Fatalf("Handshake error %v: want an *InspectionError naming the issuer and the proxy", err)
	}
	if len(info.Chain) == 0 || info.Chain[0].Issuer != "Corp Inspection CA" {
		t.Errorf("chain %+v: want the inspection certificate", info.Chain)
	}
	if r := <-mitm.MITMResults(); r.ClientCerts != 0 {
		t.Errorf("the device certificate reached the MITM")
	}
	if n := s.Connections(); n != 0 {
		t.Errorf("%d connections reached the emulator", n)
	}
}

// On the 443-style listener without ALPN the server does not ask for the
// certificate, and answers 403 Missing Authentication Token.
func TestProberALPNOff(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	cfg := clientConfig(t, s, iotemu.ListenerALPN, "off")
	p := newProber(t, cfg, 0)
	conn, err := p.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tc, info, err := p.Handshake(t.Context(), conn, devicePair(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if info.ClientCertRequested || info.ALPN != "" || info.ALPNOffered != nil {
		t.Errorf("TLSInfo %+v: want no ALPN and no certificate request", info)
	}
	_, err = p.Publish(t.Context(), tc, "sensors/pi/doctor", []byte(`{}`))
	pe, ok := errors.AsType[*publisher.Error](err)
	if !ok || pe.Status != 403 || pe.Message != "Missing Authentication Token" || pe.Kind != publisher.Auth {
		t.Fatalf("Publish error %v: want 403 Missing Authentication Token", err)
	}
}

func TestNewProberRoutes(t *testing.T) {
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := publisher.Config{Host: "abc123-ats.iot.eu-west-1.amazonaws.com", Port: 443, FallbackPort: 8443,
		CertFile: pki.Path(iotemu.DeviceCertFile), KeyFile: pki.Path(iotemu.DeviceKeyFile), Proxy: "http://pi:s3cret@proxy.corp:3128"}
	tests := []struct {
		port     int
		endpoint string
		alpn     []string
	}{
		{0, "abc123-ats.iot.eu-west-1.amazonaws.com:443", []string{publisher.ALPNProtocol}},
		{8443, "abc123-ats.iot.eu-west-1.amazonaws.com:8443", nil},
		{9443, "abc123-ats.iot.eu-west-1.amazonaws.com:9443", nil},
	}
	for _, tt := range tests {
		p := newProber(t, base, tt.port)
		if p.Endpoint() != tt.endpoint || !slices.Equal(p.ALPN(), tt.alpn) {
			t.Errorf("port %d: endpoint %s, ALPN %q; want %s, %q", tt.port, p.Endpoint(), p.ALPN(), tt.endpoint, tt.alpn)
		}
		info, ok := p.Proxy()
		want := publisher.ProxyInfo{URL: "http://pi:xxxxx@proxy.corp:3128", Host: "proxy.corp", Port: 3128, User: "pi", Source: "endpoint.proxy"}
		if !ok || info != want {
			t.Errorf("port %d: Proxy() = %+v, %v, want %+v", tt.port, info, ok, want)
		}
	}
	t.Setenv("HTTPS_PROXY", "socks5://proxy.corp:1080")
	cfg := base
	cfg.Proxy = ""
	if _, err := publisher.NewProber(cfg, 0, nil); err == nil || !strings.Contains(err.Error(), "HTTPS_PROXY") {
		t.Errorf("NewProber with a socks5 HTTPS_PROXY: %v, want an error naming HTTPS_PROXY", err)
	}
	// A CA file that cannot be used does not stop the steps before TLS.
	cfg = base
	cfg.CAFile = t.TempDir() + "/missing.pem"
	p := newProber(t, cfg, 0)
	client, server := net.Pipe()
	defer server.Close()
	if _, _, err := p.Handshake(context.Background(), client, nil); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Errorf("Handshake with a missing CA file: %v", err)
	}
}

func TestCertificateID(t *testing.T) {
	pki, err := iotemu.NewPKI("")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pki.Device.Leaf.Raw)
	if got := publisher.CertificateID(pki.Device.Leaf); got != hex.EncodeToString(sum[:]) {
		t.Errorf("CertificateID = %s", got)
	}
}
