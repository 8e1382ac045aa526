package proxytest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// alpnProtocol is publisher.ALPNProtocol, which a TLS-inspecting proxy
// offers back (not imported: proxytest does not depend on the publisher).
const alpnProtocol = "x-amzn-http-ca"

// ProxyOptions configures StartProxy.
type ProxyOptions struct {
	// Answer decides the status for a CONNECT target (host:port); nil
	// means 200.
	Answer func(target string) int
	// Silent proxies read CONNECT and never answer.
	Silent bool
	// MITM, when set, makes the proxy inspect TLS: it terminates the
	// client's TLS with this certificate and forwards over a TLS session
	// of its own, which has no client certificate to present.
	MITM *tls.Certificate
}

// Proxy is a programmable CONNECT proxy on loopback. Whatever host a
// CONNECT names, it connects to that port on 127.0.0.1 (so that names that
// do not resolve here, such as AWS endpoints, can be tunnelled).
type Proxy struct {
	ln   net.Listener
	opts ProxyOptions

	mitmResults chan MITMResult

	mu      sync.Mutex
	targets []string // CONNECT targets, in order
	auth    []string // their Proxy-Authorization headers
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

// MITMResult is the outcome of one client handshake with a MITM proxy.
type MITMResult struct {
	ClientCerts int   // certificates the client presented
	Err         error // the client-side handshake's error
}

// StartProxy starts a CONNECT proxy; it is closed, with all its
// connections, at cleanup.
func StartProxy(t testing.TB, o ProxyOptions) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, opts: o, conns: map[net.Conn]bool{}, mitmResults: make(chan MITMResult, 10)}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.track(c)
			p.wg.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// StartMITM starts a TLS-inspecting proxy that presents leaf (see
// InspectionCA) in place of the server's certificate.
func StartMITM(t testing.TB, leaf tls.Certificate) *Proxy {
	t.Helper()
	return StartProxy(t, ProxyOptions{MITM: &leaf})
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns http://Addr.
func (p *Proxy) URL() string { return "http://" + p.Addr() }

// Targets returns the CONNECT targets asked for, in order.
func (p *Proxy) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.targets)
}

// Auth returns the Proxy-Authorization header of each CONNECT, in order
// ("" when none was sent).
func (p *Proxy) Auth() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.auth)
}

// MITMResults receives the outcome of each client handshake of a MITM
// proxy (buffered: 10).
func (p *Proxy) MITMResults() <-chan MITMResult { return p.mitmResults }

func (p *Proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = true
	p.mu.Unlock()
}

func (p *Proxy) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, req.Host)
	p.auth = append(p.auth, req.Header.Get("Proxy-Authorization"))
	p.mu.Unlock()
	if p.opts.Silent {
		_, _ = io.Copy(io.Discard, br)
		return
	}
	status := http.StatusOK
	if p.opts.Answer != nil {
		status = p.opts.Answer(req.Host)
	}
	if req.Method != http.MethodConnect {
		status = http.StatusMethodNotAllowed
	}
	if status != http.StatusOK {
		fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status, http.StatusText(status))
		return
	}
	// Dial the target's port on loopback (the host may be a name that
	// does not resolve here, such as an AWS endpoint).
	_, port, _ := net.SplitHostPort(req.Host)
	dial := func() (net.Conn, bool) {
		up, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			return nil, false
		}
		p.track(up)
		return up, true
	}
	if p.opts.MITM == nil {
		up, ok := dial()
		if !ok {
			fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			return
		}
		defer up.Close()
		fmt.Fprintf(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		pipe(c, io.MultiReader(br, c), up)
		return
	}
	fmt.Fprintf(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	var offered []string
	tc := tls.Server(c, &tls.Config{
		Certificates: []tls.Certificate{*p.opts.MITM},
		ClientAuth:   tls.RequestClientCert,
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			offered = slices.Clone(h.SupportedProtos)
			return nil, nil
		},
		NextProtos: []string{alpnProtocol, "http/1.1"},
	})
	err = tc.Handshake()
	p.mitmResults <- MITMResult{ClientCerts: len(tc.ConnectionState().PeerCertificates), Err: err}
	if err != nil {
		return
	}
	up, ok := dial()
	if !ok {
		return
	}
	defer up.Close()
	// The inspecting side's own session to the server: it has no device
	// certificate to present.
	us := tls.Client(up, &tls.Config{InsecureSkipVerify: true, NextProtos: offered})
	if err := us.Handshake(); err != nil {
		return
	}
	pipe(tc, tc, us)
}

// pipe copies between a client (read through r) and a server until either
// side is done.
func pipe(client net.Conn, r io.Reader, server net.Conn) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, r); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	<-done
}

// InspectionCA makes a CA like a TLS-inspecting proxy's ("Corp Inspection
// CA", organisation "Example Corp") and a certificate from it for names
// (host names or addresses), and writes the CA to dir/inspection-ca.pem.
func InspectionCA(t testing.TB, dir string, names ...string) (leaf tls.Certificate, caFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Corp Inspection CA", Organization: []string{"Example Corp"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "inspection-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}, caFile
}
