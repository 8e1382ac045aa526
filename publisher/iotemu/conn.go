package iotemu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
)

// The emulator's connections: TLS done by hand per connection, so that
// each listener can judge the client's ALPN offer and certificate as AWS
// does, and the connections can be counted, tracked and closed.

func (s *Server) connState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	s.mu.Lock()
	if state == http.StateNew {
		// Called by Serve before it starts the connection's goroutine,
		// so this Add precedes Close's Wait.
		s.connsWG.Add(1)
	}
	t := s.conns[c]
	if t == nil {
		t = &connTrack{}
		s.conns[c] = t
	}
	t.state = state
	var done chan struct{}
	switch state {
	case http.StateHijacked, http.StateClosed:
		delete(s.conns, c)
		done, t.idleClosed = t.idleClosed, nil
	case http.StateIdle:
		done, t.idleClosed = t.idleClosed, nil
	}
	s.mu.Unlock()
	s.log.Debug("connection", "listener", c.listener, "remote", c.raw.RemoteAddr(), "state", state)
	if done != nil {
		if state == http.StateIdle {
			_ = c.Close()
		}
		close(done)
	}
	if state == http.StateClosed || state == http.StateHijacked {
		s.connsWG.Done()
	}
}

type connKey struct{}

// tlsListener does the TLS handshake itself and hands http.Server a conn
// that is not a *tls.Conn, so that http.Server serves HTTP/1.1 on it
// whatever ALPN protocol was negotiated (it would otherwise drop a
// connection that negotiated x-amzn-http-ca).
type tlsListener struct {
	net.Listener
	s    *Server
	name string
}

func (l *tlsListener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	l.s.counts.connections++
	l.s.mu.Unlock()
	c := &conn{raw: raw, s: l.s, listener: l.name}
	c.tls = tls.Server(raw, &tls.Config{
		MinVersion:         tls.VersionTLS12,
		GetConfigForClient: c.configForClient,
	})
	c.Conn = c.tls
	return c, nil
}

// conn is a server-side TLS connection that handshakes on first use.
type conn struct {
	net.Conn // the *tls.Conn
	tls      *tls.Conn
	raw      net.Conn
	s        *Server
	listener string

	once           sync.Once
	hsErr          error
	failureCounted bool // by verifyClient, during the handshake
}

// configForClient picks the handshake parameters from the ClientHello, as
// AWS does on 443: x-amzn-http-ca offered means certificate authentication;
// otherwise the connection is treated as SigV4, so no client certificate is
// requested and no ALPN overlap is required (a Go server would otherwise
// fail the handshake where AWS answers 403).
func (c *conn) configForClient(h *tls.ClientHelloInfo) (*tls.Config, error) {
	c.s.mu.Lock()
	c.s.hellos = append(c.s.hellos, ClientHello{Listener: c.listener, ServerName: h.ServerName, ALPN: slices.Clone(h.SupportedProtos)})
	c.s.mu.Unlock()
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.s.pki.Server},
		// Verified by verifyClient rather than by crypto/tls, so that a
		// refusal is counted before the client can see the alert.
		ClientAuth:             tls.RequireAnyClientCert,
		VerifyPeerCertificate:  c.verifyClient,
		SessionTicketsDisabled: true,
	}
	offered := slices.Contains(h.SupportedProtos, publisher.ALPNProtocol)
	switch {
	case c.listener == ListenerALPN && offered:
		cfg.NextProtos = []string{publisher.ALPNProtocol}
	case c.listener == ListenerALPN:
		cfg.ClientAuth, cfg.VerifyPeerCertificate = tls.NoClientCert, nil
	}
	// On 8443, whether AWS negotiates x-amzn-http-ca when offered is
	// undocumented; the emulator ignores it there and only echoes http/1.1.
	if cfg.NextProtos == nil && slices.Contains(h.SupportedProtos, "http/1.1") {
		cfg.NextProtos = []string{"http/1.1"}
	}
	return cfg, nil
}

// verifyClient does what tls.RequireAndVerifyClientCert would.
func (c *conn) verifyClient(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	err := c.s.pki.verifyClient(rawCerts)
	if err != nil {
		c.s.mu.Lock()
		c.s.counts.handshakeFailures++
		c.s.mu.Unlock()
		c.failureCounted = true
	}
	return err
}

func (c *conn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		err := c.tls.HandshakeContext(ctx)
		c.s.mu.Lock()
		if err != nil {
			if !c.failureCounted {
				c.s.counts.handshakeFailures++
			}
		} else {
			c.s.counts.handshakes++
		}
		c.s.mu.Unlock()
		if err != nil {
			c.s.log.Info("TLS handshake failed", "listener", c.listener, "remote", c.raw.RemoteAddr(), "err", err)
			// In TLS 1.3 the client sends its request right after its
			// certificate without waiting for our verdict. Read it before
			// closing so the close does not reset the connection before
			// the client has read our alert.
			_ = c.raw.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = io.Copy(io.Discard, c.raw)
		}
		c.hsErr = err
	})
	return c.hsErr
}

func (c *conn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.tls.Read(b)
}

// CloseWrite lets net/http half-close before closing a connection whose
// request body it did not read, so the client gets the reply, not a reset.
func (c *conn) CloseWrite() error { return c.tls.CloseWrite() }

func (c *conn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.tls.Write(b)
}
