// Package publisher publishes messages to AWS IoT Core over HTTPS with mutual
// TLS (POST /topics/<topic>), on port 8443, or on 443 with the ALPN name
// x-amzn-http-ca.
package publisher

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
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
}

// Result describes a successful publish.
type Result struct {
	Status    int
	TraceID   string
	RequestID string
}

// Client publishes over one kept-alive HTTPS connection. It is safe for
// concurrent use.
type Client struct {
	cfg       Config
	log       *slog.Logger
	endpoint  string // host:port
	transport *http.Transport
	http      *http.Client
}

// New loads the client certificate and trust roots and prepares the
// connection; it does not dial.
func New(cfg Config, logger *slog.Logger) (*Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Host == "" {
		return nil, errors.New("publisher: host is empty")
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("publisher: port %d out of range 1-65535", cfg.Port)
	}
	alpn, err := resolveALPN(cfg.ALPN, cfg.Port)
	if err != nil {
		return nil, err
	}
	if cfg.QoS != 0 && cfg.QoS != 1 {
		return nil, fmt.Errorf("publisher: qos %d: want 0 or 1", cfg.QoS)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("publisher: negative timeout %s", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	cert, err := loadKeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	warnValidity(logger, cfg.CertFile, cert.Leaf)
	roots, err := loadRoots(cfg.CAFile, logger)
	if err != nil {
		return nil, err
	}
	tlsCfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		ServerName:   cfg.Host,
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		// AWS IoT does not want session resumption for certificate auth.
		SessionTicketsDisabled: true,
	}
	if alpn {
		tlsCfg.NextProtos = []string{ALPNProtocol}
	}
	// HTTP/1.1 only: AWS IoT's publish API does not speak h2, and an "h2"
	// in the ALPN offer would stop 443 from using the certificate.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               nil, // proxy support comes later
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: cfg.Timeout,
		Protocols:           &protocols,
		MaxIdleConns:        2,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     idleConnTimeout,
		DisableCompression:  true,
	}
	return &Client{
		cfg:       cfg,
		log:       logger,
		endpoint:  net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		transport: tr,
		http: &http.Client{
			Transport: tr,
			// AWS never redirects a publish; following one would resend
			// the payload somewhere unexpected.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Endpoint returns host:port.
func (c *Client) Endpoint() string { return c.endpoint }

// ALPN reports whether the client offers x-amzn-http-ca.
func (c *Client) ALPN() bool { return len(c.transport.TLSClientConfig.NextProtos) > 0 }

// Close closes idle connections. In-flight publishes are not interrupted.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

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
	res, stale, err := c.attempt(ctx, topic, payload)
	if err != nil && stale {
		c.log.Debug("kept-alive connection was closed by the server, reconnecting", "endpoint", c.endpoint, "err", err)
		res, _, err = c.attempt(ctx, topic, payload)
	}
	return res, err
}

// attempt makes one request. stale reports a failure on a reused connection
// before any reply byte, which is worth one immediate retry.
func (c *Client) attempt(parent context.Context, topic string, payload []byte) (res Result, stale bool, err error) {
	ctx, cancel := context.WithTimeout(parent, c.cfg.Timeout)
	defer cancel()
	var reused, replied atomic.Bool
	trace := &httptrace.ClientTrace{
		GotConn:              func(i httptrace.GotConnInfo) { reused.Store(i.Reused) },
		GotFirstResponseByte: func() { replied.Store(true) },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace),
		http.MethodPost, "https://"+c.endpoint+"/", bytes.NewReader(payload))
	if err != nil {
		return Result{}, false, &Error{Kind: Permanent, Topic: topic, Message: "build request", Err: err}
	}
	req.URL = c.topicURL(topic)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		stale = reused.Load() && !replied.Load() && ctx.Err() == nil && isConnDropped(err)
		return Result{}, stale, classifyNetError(topic, c.endpoint, c.cfg.Timeout, parent, ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBody))
	if err != nil {
		return Result{}, false, classifyNetError(topic, c.endpoint, c.cfg.Timeout, parent, ctx, err)
	}
	// Drain what is left so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4*maxReplyBody))
	var reply struct {
		Message string `json:"message"`
		TraceID string `json:"traceId"`
	}
	_ = json.Unmarshal(body, &reply) // a non-JSON error page just has no fields
	res = Result{Status: resp.StatusCode, TraceID: reply.TraceID, RequestID: resp.Header.Get("x-amzn-RequestId")}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return res, false, nil
	}
	msg := reply.Message
	if msg == "" && !json.Valid(body) {
		msg = strings.TrimSpace(string(body[:min(len(body), 200)]))
	}
	return res, false, &Error{
		Kind:       kindForStatus(resp.StatusCode),
		Topic:      topic,
		Status:     resp.StatusCode,
		ErrorType:  errorTypeName(resp.Header.Get("x-amzn-ErrorType")),
		TraceID:    reply.TraceID,
		RequestID:  res.RequestID,
		Message:    msg,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After")),
	}
}

// topicURL builds https://host:port/topics/<topic as one segment>?qos=N.
// RawPath carries the %2F escapes; url.URL only uses RawPath when it is a
// valid encoding of Path, so fall back to Opaque (sent verbatim) otherwise.
func (c *Client) topicURL(topic string) *url.URL {
	raw := "/topics/" + EscapeTopic(topic)
	u := &url.URL{
		Scheme:   "https",
		Host:     c.endpoint,
		Path:     "/topics/" + topic,
		RawPath:  raw,
		RawQuery: "qos=" + strconv.Itoa(c.cfg.QoS),
	}
	if u.EscapedPath() != raw {
		u.Path, u.RawPath, u.Opaque = "", "", raw
	}
	return u
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
