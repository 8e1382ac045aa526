package publisher

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Diagnosis, for `sensor-agent doctor`: the links of the connection to the
// endpoint one at a time (the proxy, its CONNECT tunnel, TCP, TLS, one
// publish), each with the client's own code, so that what the doctor finds
// is what the agent meets. Each step returns the publisher's typed errors
// (*ProxyError, *InspectionError, *Error, ...); the caller words them.

// LoadKeyPair loads a PEM certificate (chain) and its private key and checks
// that they match, as New does with Config.CertFile and Config.KeyFile, with
// errors that say which file is wrong and how.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	return loadKeyPair(certFile, keyFile)
}

// CertificateID is AWS IoT's id of a certificate: the SHA-256 of its DER,
// in hex (aws iot describe-certificate --certificate-id).
func CertificateID(c *x509.Certificate) string { return certID(c) }

// ServerAlert returns the TLS alert the server sent, if err (or its chain)
// is one: "bad certificate" (42), "certificate required" (116), ...
func ServerAlert(err error) (tls.AlertError, bool) {
	a, ok := remoteAlert(err)
	return tls.AlertError(a), ok
}

// Prober walks the connection to one port of the endpoint link by link, with
// the client's routes (proxy or direct), TLS settings and request. It holds
// no connection: each step is given the previous step's.
type Prober struct {
	cfg      Config
	port     int
	addr     string // host:port
	route    route
	dialer   *endpointDialer // its tls has no client certificate
	rootsErr error           // why the CA file cannot be used; Handshake returns it
}

// NewProber prepares the diagnosis of cfg's connection to port (0 means
// cfg.Port; cfg.FallbackPort is reached as the client reaches it, without
// ALPN unless it is 443). It does not load the client certificate (see
// LoadKeyPair and Handshake) and does not dial. A CA file that cannot be
// used is reported by Handshake, so that the steps before it can run.
func NewProber(cfg Config, port int, logger *slog.Logger) (*Prober, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if port == 0 {
		port = cfg.Port
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("publisher: port %d out of range 1-65535", port)
	}
	if port != cfg.Port && port != cfg.FallbackPort {
		// Another port is probed as if it were the configured one.
		cfg.Port, cfg.FallbackPort = port, 0
	}
	cs, err := newConnSetup(cfg, logger)
	if err != nil {
		return nil, err
	}
	p := &Prober{
		cfg:      cs.cfg,
		port:     port,
		addr:     net.JoinHostPort(cs.cfg.Host, strconv.Itoa(port)),
		rootsErr: cs.rootsErr,
		dialer:   cs.dialer,
	}
	p.route = p.dialer.routeFor(port)
	return p, nil
}

// Endpoint returns host:port probed.
func (p *Prober) Endpoint() string { return p.addr }

// Port returns the port probed.
func (p *Prober) Port() int { return p.port }

// Timeout bounds each step.
func (p *Prober) Timeout() time.Duration { return p.cfg.Timeout }

// ALPN returns the ALPN offer on the port probed (nil: none).
func (p *Prober) ALPN() []string { return p.route.alpn }

// ProxyInfo describes the proxy on the way to the endpoint.
type ProxyInfo struct {
	URL  string // the proxy URL, password redacted; "" when direct
	Host string // its host name or address
	Port int
	User string // user name sent with Basic authentication, "" if none
	// Source says where the proxy came from ("endpoint.proxy",
	// "HTTPS_PROXY", "https_proxy") or, when the connection is direct,
	// what decided so ("NO_PROXY", "no_proxy", "loopback"; "" when no
	// proxy is set at all).
	Source string
}

// Proxy describes the route to the port probed; ok is false when it is
// direct.
func (p *Prober) Proxy() (info ProxyInfo, ok bool) {
	px := p.route.proxy
	if px == nil {
		return ProxyInfo{Source: p.route.source}, false
	}
	port, _ := strconv.Atoi(px.Port())
	return ProxyInfo{URL: px.Redacted(), Host: px.Hostname(), Port: port, User: px.User.Username(), Source: p.route.source}, true
}

// Dial opens a TCP connection to the endpoint, directly. Its error is the
// dialer's (*net.OpError: refused, timed out, no route).
func (p *Prober) Dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	nd := net.Dialer{KeepAlive: 30 * time.Second}
	return nd.DialContext(ctx, "tcp", p.addr)
}

// TunnelResult says how far Tunnel got.
type TunnelResult struct {
	// ProxyReached is how long it took to reach the proxy: TCP, and TLS
	// with an https:// proxy. Zero when it was not reached.
	ProxyReached time.Duration
	// ProxyAddr is the address the proxy was reached at.
	ProxyAddr string
}

// Tunnel connects to the proxy and asks it for a CONNECT tunnel to the
// endpoint, exactly as the client does. A failure is a *ProxyError; when
// res.ProxyReached is zero it failed before CONNECT was sent (proxy
// unreachable, or TLS with an https:// proxy), else it is the proxy's
// answer to CONNECT. It needs a proxy (see Proxy).
func (p *Prober) Tunnel(ctx context.Context) (conn net.Conn, res TunnelResult, err error) {
	if p.route.proxy == nil {
		return nil, res, errors.New("publisher: no proxy on the way to " + p.addr)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	progress := &dialProgress{}
	start := time.Now()
	conn, err = p.dialer.tunnel(ctx, p.route, p.addr, progress)
	progress.mu.Lock()
	if progress.stage >= stageConnect {
		res.ProxyReached = progress.at.Sub(start)
	}
	progress.mu.Unlock()
	if err != nil {
		if pe, ok := errors.AsType[*ProxyError](err); ok {
			return nil, res, pe
		}
		return nil, res, err
	}
	res.ProxyAddr = conn.RemoteAddr().String()
	return conn, res, nil
}

// CertSummary names one certificate of a chain.
type CertSummary struct {
	Subject, Issuer     string // common names, else the whole names
	NotBefore, NotAfter time.Time
}

// TLSInfo is what a handshake showed.
type TLSInfo struct {
	Version     string   // "TLS 1.3"
	CipherSuite string   // "TLS_AES_128_GCM_SHA256"
	ServerName  string   // the SNI sent; "" when none (the host is an address)
	ALPNOffered []string // nil: none
	ALPN        string   // negotiated; "" when none
	// ClientCertRequested: the server asked for a client certificate.
	// On AWS's port 443 it asks only when x-amzn-http-ca was offered.
	ClientCertRequested bool
	// Chain is what the server presented, leaf first.
	Chain []CertSummary
	// Root is the root the chain verified to, "" when not verified.
	Root string
	// AmazonRoot: that root is one AWS IoT's certificates chain to.
	AmazonRoot bool
	// AmazonHost: the endpoint is an AWS host, whose chain must end at an
	// Amazon root (else the handshake fails with an *InspectionError).
	AmazonHost bool
}

// Handshake runs the client's TLS handshake with the endpoint over conn
// (from Dial or Tunnel), presenting cert (nil: none), with the client's
// roots, SNI and ALPN offer and, for AWS hosts, the check that the chain
// ends at Amazon. A certificate from a foreign issuer gives an
// *InspectionError; other failures are crypto/tls's (see ServerAlert).
// With TLS 1.3 the server judges the client certificate after the client
// has finished its handshake: a refusal then shows at the first read, in
// Publish. conn is closed on failure.
func (p *Prober) Handshake(ctx context.Context, conn net.Conn, cert *tls.Certificate) (*tls.Conn, TLSInfo, error) {
	info := TLSInfo{ALPNOffered: p.route.alpn, AmazonHost: isAmazonHost(p.cfg.Host)}
	if net.ParseIP(p.cfg.Host) == nil {
		info.ServerName = p.cfg.Host
	}
	if p.rootsErr != nil {
		_ = conn.Close()
		return nil, info, p.rootsErr
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	cfg := p.dialer.tlsConfigFor(p.cfg.Host, p.route)
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		info.ClientCertRequested = true
		if cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert, nil
	}
	proxyName := ""
	if p.route.proxy != nil {
		proxyName = p.route.proxy.Redacted()
	}
	tc := tls.Client(conn, cfg)
	err := tc.HandshakeContext(ctx)
	if err != nil {
		_ = conn.Close()
		if ie := inspectionFromHandshake(p.cfg.Host, p.addr, proxyName, err); ie != nil {
			err = ie
		}
		if verr, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
			info.Chain = summarize(verr.UnverifiedCertificates)
		}
		return nil, info, err
	}
	cs := tc.ConnectionState()
	info.Version = tls.VersionName(cs.Version)
	info.CipherSuite = tls.CipherSuiteName(cs.CipherSuite)
	info.ALPN = cs.NegotiatedProtocol
	info.Chain = summarize(cs.PeerCertificates)
	if len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
		chain := cs.VerifiedChains[0]
		root := chain[len(chain)-1]
		info.Root = nameOf(root.Subject.CommonName, root.Subject.String())
		for _, ch := range cs.VerifiedChains {
			if len(ch) > 0 && isAmazonRoot(ch[len(ch)-1]) {
				info.AmazonRoot = true
			}
		}
	}
	return tc, info, nil
}

func summarize(certs []*x509.Certificate) []CertSummary {
	out := make([]CertSummary, len(certs))
	for i, c := range certs {
		out[i] = CertSummary{
			Subject:   nameOf(c.Subject.CommonName, c.Subject.String()),
			Issuer:    nameOf(c.Issuer.CommonName, c.Issuer.String()),
			NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		}
	}
	return out
}

func nameOf(cn, full string) string {
	if cn != "" {
		return cn
	}
	return full
}

// Publish sends one publish request over conn (from Handshake) as the
// client does, and returns its Result or an *Error, as Client.Publish. It
// does not retry. conn is left open.
func (p *Prober) Publish(ctx context.Context, conn net.Conn, topic string, payload []byte) (Result, error) {
	if err := ValidateTopic(topic); err != nil {
		return Result{}, &Error{Kind: Permanent, Topic: topic, Err: err}
	}
	if len(payload) > MaxPayload {
		return Result{}, &Error{Kind: Permanent, Topic: topic,
			Message: fmt.Sprintf("payload is %d bytes, limit is %d: split it", len(payload), MaxPayload)}
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(err error) (Result, error) {
		return Result{}, classifyNetError(topic, p.addr, p.cfg.Timeout, parent, ctx, ctxErr(ctx, err))
	}
	// The very request the client sends.
	hc := &httpConn{Conn: conn, br: bufio.NewReader(conn)}
	x, err := hc.exchange(appendRequest(nil, p.addr, p.cfg.QoS, topic, payload))
	if err != nil {
		return fail(err)
	}
	return replyResult(x.resp, x.body, topic)
}

// Shadow sends one Device Shadow request over conn (from Handshake) as
// Client.Shadow does, and returns its answer or error as Client.Shadow. It
// does not retry. conn is left open.
func (p *Prober) Shadow(ctx context.Context, conn net.Conn, method, thing, name string, body []byte) (ShadowReply, error) {
	cl := &call{method: method, thing: thing, name: name, body: body, op: shadowOp(method, thing, name)}
	if err := checkShadowCall(cl); err != nil {
		return ShadowReply{}, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	hc := &httpConn{Conn: conn, br: bufio.NewReader(conn)}
	x, err := hc.exchange(cl.appendTo(nil, p.addr, p.cfg.QoS))
	if err != nil {
		return ShadowReply{}, cl.netError(p.addr, p.cfg.Timeout, parent, ctx, ctxErr(ctx, err))
	}
	return shadowReply(sent{exchange: x, endpoint: p.addr}, cl, p.cfg.Host)
}
