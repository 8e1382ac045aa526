// Package publisher publishes messages to AWS IoT Core over HTTPS with mutual
// TLS (POST /topics/<topic>), on port 8443, or on 443 with the ALPN name
// x-amzn-http-ca.
package publisher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	// MaxPayload is the AWS IoT Core message size limit in bytes.
	MaxPayload = 128 * 1024
	// ALPNProtocol is the ALPN name that makes port 443 authenticate with
	// the client certificate.
	ALPNProtocol = "x-amzn-http-ca"
	// DefaultTimeout bounds one request when Config.Timeout is zero.
	DefaultTimeout = 10 * time.Second
)

const (
	// idleConnTimeout closes our side of an idle connection before a typical
	// 60 s server or load-balancer idle timeout does, to dodge the race where
	// a request is written on a connection the server is closing.
	idleConnTimeout = 50 * time.Second
	// maxReplyBody bounds what we read of a reply; AWS replies are tiny.
	maxReplyBody = 64 << 10
)

// Config configures a Client.
type Config struct {
	Host string // the account's iot:Data-ATS endpoint
	Port int    // 8443, or 443 with ALPN
	// ALPN is "auto" (or ""), "on" or "off". Auto offers x-amzn-http-ca
	// iff Port is 443.
	ALPN     string
	CertFile string // device certificate (PEM), chain allowed
	KeyFile  string // its private key (PEM: PKCS#1, PKCS#8 or SEC 1)
	// CAFile is an optional PEM bundle trusted in addition to the system
	// roots (e.g. AmazonRootCA1.pem on systems without CA certificates).
	CAFile  string
	Timeout time.Duration // per request; 0 means DefaultTimeout
	QoS     int           // 0 or 1
	// Proxy is an http:// or https:// proxy URL, with user:password for
	// Basic authentication. "" means the environment's HTTPS_PROXY or
	// https_proxy, with NO_PROXY or no_proxy (see ProxyFromEnvironment).
	// The TLS session with AWS runs end to end through a CONNECT tunnel.
	Proxy string
	// FallbackPort, if not 0, is tried without ALPN (e.g. 8443) when Port
	// cannot be reached; Port is tried again every FallbackRecheck.
	FallbackPort int
	// Getenv is where HTTPS_PROXY and NO_PROXY are read when Proxy is "";
	// nil means os.Getenv.
	Getenv func(string) string
}

// FallbackRecheck is how long the client stays on Config.FallbackPort
// before it tries Config.Port again.
const FallbackRecheck = 10 * time.Minute

// Result describes a successful publish.
type Result struct {
	Status    int
	TraceID   string
	RequestID string
	// Warning, when not empty, says what came back instead of AWS's
	// documented answer (200 with its JSON) to a reply that was taken as
	// delivered anyway (see reply.go).
	Warning string
}

// Client publishes over one kept-alive HTTPS connection. It is safe for
// concurrent use.
type Client struct {
	cfg      Config
	log      *slog.Logger
	endpoint string          // host:port
	pool     *connPool       // the kept-alive connections (conn.go)
	certs    *certSource     // the client certificate, reloaded on rotation
	dialer   *endpointDialer // TLS to the endpoint, direct or via a proxy
	ports    portState       // the port fallback

	oddReply    atomic.Bool // Result.Warning has been logged
	alpnMissing atomic.Bool // the last new connection did not negotiate ALPN
}

// New loads the client certificate and trust roots and prepares the
// connection; it does not dial.
func New(cfg Config, logger *slog.Logger) (*Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cs, err := newConnSetup(cfg, logger)
	if err != nil {
		return nil, err
	}
	cfg = cs.cfg
	certs, err := newCertSource(cfg, logger)
	if err != nil {
		return nil, err
	}
	if cs.rootsErr != nil {
		return nil, cs.rootsErr
	}
	// The current pair, re-read when its files change (keys.go).
	cs.dialer.tls.GetClientCertificate = certs.get
	pool := &connPool{}
	return &Client{
		cfg:      cfg,
		log:      logger,
		endpoint: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		pool:     pool,
		certs:    certs.watch(pool.closeIdle),
		dialer:   cs.dialer,
	}, nil
}

// connSetup is what the client and the prober derive alike from a
// Config, so that the doctor probes what the agent dials: the checked
// config, each port's route and the TLS template (without a client
// certificate).
type connSetup struct {
	cfg      Config
	dialer   *endpointDialer
	rootsErr error // why the CA file cannot be used
}

func newConnSetup(cfg Config, logger *slog.Logger) (*connSetup, error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	alpn, err := resolveALPN(cfg.ALPN, cfg.Port)
	if err != nil {
		return nil, err
	}
	routes, err := resolveRoutes(cfg, alpn, cfg.Getenv, logger)
	if err != nil {
		return nil, err
	}
	roots, rootsErr := loadRoots(cfg.CAFile, logger)
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: cfg.Host,
		RootCAs:    roots,
		// AWS IoT does not want session resumption for certificate auth.
		SessionTicketsDisabled: true,
		// A publish is one record (conn.go): no small records while a
		// new connection warms up, which would add framing and packets.
		DynamicRecordSizingDisabled: true,
	}
	if alpn {
		tlsCfg.NextProtos = []string{ALPNProtocol}
	}
	return &connSetup{
		cfg:      cfg,
		dialer:   &endpointDialer{timeout: cfg.Timeout, tls: tlsCfg, routes: routes, primary: cfg.Port, log: logger},
		rootsErr: rootsErr,
	}, nil
}

// checkConfig checks cfg and fills in its defaults.
func checkConfig(cfg *Config) error {
	if cfg.Host == "" {
		return errors.New("publisher: host is empty")
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return fmt.Errorf("publisher: port %d out of range 1-65535", cfg.Port)
	}
	if cfg.QoS != 0 && cfg.QoS != 1 {
		return fmt.Errorf("publisher: qos %d: want 0 or 1", cfg.QoS)
	}
	if cfg.Timeout < 0 {
		return fmt.Errorf("publisher: negative timeout %s", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.FallbackPort < 0 || cfg.FallbackPort > 65535 {
		return fmt.Errorf("publisher: fallback port %d out of range 1-65535 (0 = no fallback)", cfg.FallbackPort)
	}
	if cfg.FallbackPort == cfg.Port {
		cfg.FallbackPort = 0
	}
	return nil
}

// Endpoint returns host:port.
func (c *Client) Endpoint() string { return c.endpoint }

// ALPN reports whether the client offers x-amzn-http-ca on Config.Port.
func (c *Client) ALPN() bool { return len(c.dialer.tls.NextProtos) > 0 }

// Proxy returns the proxy URL used for Config.Port, with the password
// redacted, and where it came from ("endpoint.proxy", "HTTPS_PROXY", ...);
// "" when the connection is direct.
func (c *Client) Proxy() (proxy, source string) {
	rt := c.dialer.routeFor(c.cfg.Port)
	if rt.proxy == nil {
		return "", ""
	}
	return rt.proxy.Redacted(), rt.source
}

// ActivePort returns the port publishes currently go to: Config.Port, or
// Config.FallbackPort while Config.Port is unreachable.
func (c *Client) ActivePort() int {
	c.ports.mu.Lock()
	defer c.ports.mu.Unlock()
	if c.ports.active == 0 {
		return c.cfg.Port
	}
	return c.ports.active
}

// Close stops watching the certificate files and closes idle connections.
// In-flight publishes are not interrupted.
func (c *Client) Close() {
	c.certs.close()
	c.pool.closeIdle()
}

func resolveALPN(mode string, port int) (bool, error) {
	switch strings.ToLower(mode) {
	case "", "auto":
		return port == 443, nil
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("publisher: alpn %q: want auto, on or off", mode)
}

// Publish sends payload to topic once. A request that fails on a reused
// keep-alive connection before any reply byte (the server closed it) is
// resent once at once on a fresh connection, as browsers do: delivery is
// at-least-once anyway. Any other failure is returned as *Error.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte) (Result, error) {
	if err := ValidateTopic(topic); err != nil {
		return Result{}, &Error{Kind: Permanent, Topic: topic, Err: err}
	}
	if len(payload) > MaxPayload {
		return Result{}, &Error{Kind: Permanent, Topic: topic,
			Message: fmt.Sprintf("payload is %d bytes, limit is %d: split it", len(payload), MaxPayload)}
	}
	x, err := c.send(ctx, &call{topic: topic, body: payload})
	if err != nil {
		return Result{}, err
	}
	return c.publishReply(x, topic)
}

// errorTypeName turns "ForbiddenException:http://internal..." into
// "ForbiddenException".
func errorTypeName(h string) string {
	name, _, _ := strings.Cut(h, ":")
	return strings.TrimSpace(name)
}

func parseRetryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// loadRoots returns the system roots plus the certificates in caFile.
func loadRoots(caFile string, logger *slog.Logger) (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		// Minimal images may have no CA store; the CA file can stand in.
		logger.Warn("no system certificate roots", "err", err)
		roots = x509.NewCertPool()
	}
	if caFile == "" {
		return roots, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificates found", caFile)
	}
	return roots, nil
}
