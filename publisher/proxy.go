package publisher

import (
	"bufio"
	"context"
	"crypto/tls"
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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Proxy support. The publisher dials the proxy itself (TCP, or TLS to an
// https:// proxy), asks it for a tunnel with CONNECT and runs the TLS session
// to AWS end to end inside the tunnel, with the publisher's own tls.Config:
// the client certificate and the ALPN offer reach AWS untouched, and every
// answer of the proxy is reported by what it means (ProxyError).
//
// The proxy URL's password is a secret: it is only ever shown through
// url.URL.Redacted, in errors as in logs.

// osGetenv is where ProxyFromEnvironment reads by default.
var osGetenv = os.Getenv

// ParseProxyURL parses a proxy setting: http://[user:password@]host[:port]
// or https://..., as endpoint.proxy and HTTPS_PROXY take it. A value without
// a scheme is taken as http://, as net/http does for HTTPS_PROXY. The port
// defaults to 80 for http and 443 for https. "" gives nil, nil. Errors show
// the value only through RedactProxyURL: it may hold a password, and one
// that holds a '/' no longer parses as one.
func ParseProxyURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	const want = "want http://[user:password@]host:port or https://..."
	shown := RedactProxyURL(s)
	if userinfoNeedsEscaping(s) {
		// Else "http://u:1234/pw@host" parses as host "u", port 1234
		// and a path, and the error would be about the path.
		return nil, fmt.Errorf("proxy %s: the user name or password holds / ? or #, which end the user name and password in a URL: percent-encode them (/ as %%2F, ? as %%3F, # as %%23, @ as %%40, : as %%3A, %% as %%25)", shown)
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's error quotes the whole value, password included.
		return nil, fmt.Errorf("proxy URL is not valid (%s): %s; percent-encode @ : / %% in the user name and password", shown, want)
	}
	switch u.Scheme = strings.ToLower(u.Scheme); u.Scheme {
	case "http", "https":
	case "socks5", "socks5h", "socks4":
		return nil, fmt.Errorf("proxy %s: %s proxies are not supported: %s", shown, u.Scheme, want)
	default:
		return nil, fmt.Errorf("proxy %s: scheme %q is not supported: %s", shown, u.Scheme, want)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("proxy %s: no host: %s", shown, want)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("proxy %s: a proxy URL has no path or query: %s", shown, want)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("proxy %s: port %q is not a port", shown, p)
		}
	} else if u.Scheme == "https" {
		u.Host = net.JoinHostPort(u.Hostname(), "443")
	} else {
		u.Host = net.JoinHostPort(u.Hostname(), "80")
	}
	u.Path = ""
	return u, nil
}

// RedactProxyURL returns a proxy setting fit to print: everything between
// "://" (or the start, without a scheme) and the last '@' is replaced by
// "xxxxx", except a user name that is unambiguous (before the first ':' and
// of plain URL characters), which is kept as url.URL.Redacted keeps it.
// It relies on no parsing, because a password with an unencoded '/', '?'
// or '#' makes the value parse as a host and a path, with no user info to
// hide. Control characters are shown as '?'.
func RedactProxyURL(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	scheme, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 && proxySchemeRE.MatchString(s[:i]) {
		scheme, rest = s[:i+3], s[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s // no user info
	}
	userinfo, host := rest[:at], rest[at+1:]
	user, _, hasPass := strings.Cut(userinfo, ":")
	switch {
	case !plainUserRE.MatchString(user):
		return scheme + "xxxxx@" + host
	case hasPass:
		return scheme + user + ":xxxxx@" + host
	}
	return scheme + user + "@" + host
}

var (
	proxySchemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`)
	// plainUserRE is a user name as RFC 3986 allows it unencoded in user
	// info (without ':'), percent-escapes included.
	plainUserRE = regexp.MustCompile(`^[A-Za-z0-9._~!$&'()*+,;=%-]+$`)
)

// userinfoNeedsEscaping reports whether what stands before the last '@'
// after "://" holds a character that ends user info in a URL.
func userinfoNeedsEscaping(s string) bool {
	_, rest, _ := strings.Cut(s, "://")
	at := strings.LastIndex(rest, "@")
	return at >= 0 && strings.ContainsAny(rest[:at], "/?#")
}

// ProxyFromEnvironment returns the proxy that the environment prescribes for
// an HTTPS connection to host:port, with net/http's rules (the semantics of
// golang.org/x/net/http/httpproxy): HTTPS_PROXY, else https_proxy; NO_PROXY,
// else no_proxy, lists exceptions; "localhost" and loopback addresses are
// never proxied. source names the variable that decided ("HTTPS_PROXY",
// "https_proxy", "NO_PROXY", "no_proxy"; "loopback" for a loopback host),
// "" when none is set. The proxy is nil when the connection is direct.
// getenv nil means os.Getenv.
func ProxyFromEnvironment(getenv func(string) string, host string, port int) (proxy *url.URL, source string, err error) {
	if getenv == nil {
		getenv = osGetenv
	}
	source = "HTTPS_PROXY"
	val := getenv(source)
	if val == "" {
		source = "https_proxy"
		val = getenv(source)
	}
	if val == "" {
		return nil, "", nil
	}
	if !useProxy("", host, strconv.Itoa(port)) {
		return nil, "loopback", nil
	}
	noName := "NO_PROXY"
	noProxy := getenv(noName)
	if noProxy == "" {
		noName = "no_proxy"
		noProxy = getenv(noName)
	}
	if !useProxy(noProxy, host, strconv.Itoa(port)) {
		return nil, noName, nil
	}
	u, err := ParseProxyURL(val)
	if err != nil {
		return nil, source, fmt.Errorf("%s: %w", source, err)
	}
	return u, source, nil
}

// useProxy reports whether a connection to host:port goes through the
// proxy, given a NO_PROXY value. It follows golang.org/x/net/http/httpproxy:
// entries are separated by commas; "*" matches everything; an IP address or
// CIDR range matches addresses (host names are not resolved); "example.com"
// matches that domain and its subdomains, ".example.com" and
// "*.example.com" only subdomains; an entry with ":port" matches only that
// port. Host names are compared case-insensitively; a trailing dot is
// ignored. localhost and loopback addresses are never proxied.
func useProxy(noProxy, host, port string) bool {
	host = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(host), "."))
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return true
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.IsLoopback() {
		return false
	}
	for _, p := range strings.Split(noProxy, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if p == "*" {
			return false
		}
		if _, cidr, err := net.ParseCIDR(p); err == nil {
			if ip != nil && cidr.Contains(ip) {
				return false
			}
			continue
		}
		phost, pport := p, ""
		if h, pp, err := net.SplitHostPort(p); err == nil {
			if h == "" {
				continue // ":80": no host, malformed; ignored as httpproxy does
			}
			phost, pport = h, pp
		}
		phost = strings.TrimSuffix(strings.TrimPrefix(phost, "["), "]")
		if pport != "" && pport != port {
			continue
		}
		if pip := net.ParseIP(phost); pip != nil {
			if ip != nil && pip.Equal(ip) {
				return false
			}
			continue
		}
		if ip != nil {
			continue // a domain entry never matches an address
		}
		phost = strings.TrimSuffix(phost, ".")
		phost = strings.TrimPrefix(phost, "*")
		if strings.HasPrefix(phost, ".") {
			if strings.HasSuffix(host, phost) {
				return false
			}
			continue
		}
		if host == phost || strings.HasSuffix(host, "."+phost) {
			return false
		}
	}
	return true
}

// ProxyReason says which link of the proxy path broke.
type ProxyReason int

const (
	// ProxyUnreachable: the proxy could not be reached (refused, no route,
	// timeout, name not found) or closed the connection without an answer.
	ProxyUnreachable ProxyReason = iota + 1
	// ProxyTLSFailed: the TLS session with an https:// proxy failed (its
	// certificate is not trusted, or it does not speak TLS).
	ProxyTLSFailed
	// ProxyAuthRequired: 407 and no credentials were sent.
	ProxyAuthRequired
	// ProxyAuthRejected: 407 although credentials were sent: they are wrong,
	// or the proxy does not accept Basic authentication.
	ProxyAuthRejected
	// ProxyForbidden: 403, the proxy does not allow CONNECT to this host or
	// port.
	ProxyForbidden
	// ProxyUpstreamFailed: 5xx (502, 503, 504, ...): the proxy could not
	// reach the endpoint.
	ProxyUpstreamFailed
	// ProxyRefused: any other answer that is not 2xx.
	ProxyRefused
	// ProxyProtocol: the answer is not HTTP (an https:// proxy given as
	// http://, or not a proxy at all).
	ProxyProtocol
)

func (r ProxyReason) String() string {
	switch r {
	case ProxyUnreachable:
		return "unreachable"
	case ProxyTLSFailed:
		return "tls failed"
	case ProxyAuthRequired:
		return "authentication required"
	case ProxyAuthRejected:
		return "authentication rejected"
	case ProxyForbidden:
		return "forbidden"
	case ProxyUpstreamFailed:
		return "upstream failed"
	case ProxyRefused:
		return "refused"
	case ProxyProtocol:
		return "protocol"
	}
	return fmt.Sprintf("ProxyReason(%d)", int(r))
}

// ProxyError is a failure on the way through an HTTP proxy.
type ProxyError struct {
	Reason ProxyReason
	Proxy  string // the proxy URL with the password redacted
	Source string // where the proxy came from: "endpoint.proxy", "HTTPS_PROXY", ...
	Target string // host:port the tunnel was asked for
	User   string // user name sent with Basic authentication, "" if none
	// Status and StatusText are the proxy's answer to CONNECT, 0 and ""
	// when there was none.
	Status     int
	StatusText string
	// Detail is what the proxy said besides the status: the schemes it
	// offers in Proxy-Authenticate, squid's X-Squid-Error.
	Detail string
	Err    error
}

func (e *ProxyError) Unwrap() error { return e.Err }

// Kind is Auth for what only a configuration change fixes (credentials,
// a forbidden port, a proxy that is not one, an untrusted proxy
// certificate) and Retry for what may pass by itself.
func (e *ProxyError) Kind() Kind {
	switch e.Reason {
	case ProxyUnreachable, ProxyUpstreamFailed:
		return Retry
	case ProxyTLSFailed:
		if isConnDropped(e.Err) || isTimeout(e.Err) {
			return Retry
		}
	}
	return Auth
}

func (e *ProxyError) Error() string {
	var b strings.Builder
	b.WriteString("proxy " + e.Proxy)
	if e.Source != "" {
		b.WriteString(" (from " + e.Source + ")")
	}
	answer := ""
	if e.Status != 0 {
		answer = strconv.Itoa(e.Status)
		if e.StatusText != "" {
			answer += " " + e.StatusText
		}
		if e.Detail != "" {
			answer += ", " + e.Detail
		}
	}
	switch e.Reason {
	case ProxyUnreachable:
		b.WriteString(" is unreachable")
		if e.Err != nil {
			b.WriteString(": " + e.Err.Error())
		}
		b.WriteString("; check the proxy address and that the proxy is running")
	case ProxyTLSFailed:
		b.WriteString(": TLS with the proxy failed")
		if e.Err != nil {
			b.WriteString(": " + e.Err.Error())
		}
		if isCertError(e.Err) {
			b.WriteString("; add the proxy's CA to ca_file, or use an http:// proxy URL")
		} else {
			b.WriteString("; is it an http:// proxy?")
		}
	case ProxyAuthRequired:
		fmt.Fprintf(&b, " requires authentication (%s) and no credentials were given", answer)
		if offersOnlyUnsupportedAuth(e.Detail) {
			b.WriteString("; the proxy does not offer Basic authentication, the only scheme the agent speaks: ask IT for Basic authentication or for an exemption for " + e.Target)
		} else {
			b.WriteString("; put them in the proxy URL: http://USER:PASSWORD@host:port")
		}
	case ProxyAuthRejected:
		fmt.Fprintf(&b, " rejected the credentials of user %q (%s)", e.User, answer)
		if offersOnlyUnsupportedAuth(e.Detail) {
			b.WriteString("; the proxy does not offer Basic authentication, the only scheme the agent speaks: ask IT for Basic authentication or for an exemption for " + e.Target)
		} else {
			b.WriteString("; check the user name and password")
		}
	case ProxyForbidden:
		fmt.Fprintf(&b, " forbids CONNECT to %s (%s); ask IT to allow CONNECT to %s", e.Target, answer, e.Target)
	case ProxyUpstreamFailed:
		fmt.Fprintf(&b, " cannot reach %s (%s): the endpoint is down or the proxy's own network does not let it through", e.Target, answer)
	case ProxyRefused:
		fmt.Fprintf(&b, " refused CONNECT to %s (%s)", e.Target, answer)
	case ProxyProtocol:
		b.WriteString(" did not answer CONNECT like an HTTP proxy")
		if e.Err != nil {
			b.WriteString(": " + e.Err.Error())
		}
		b.WriteString("; check the proxy URL's scheme (http:// or https://) and port")
	default:
		b.WriteString(": " + e.Reason.String())
	}
	return b.String()
}

// offersOnlyUnsupportedAuth reports whether the schemes a proxy offers
// (Detail of a 407, "offers NTLM, Negotiate") lack Basic.
func offersOnlyUnsupportedAuth(detail string) bool {
	schemes, ok := strings.CutPrefix(detail, "offers ")
	if !ok || schemes == "" {
		return false
	}
	for s := range strings.SplitSeq(schemes, ",") {
		if strings.EqualFold(strings.TrimSpace(s), "Basic") {
			return false
		}
	}
	return true
}

func isCertError(err error) bool {
	var (
		verr  *tls.CertificateVerificationError
		uaerr x509.UnknownAuthorityError
		hnerr x509.HostnameError
		inv   x509.CertificateInvalidError
	)
	return errors.As(err, &verr) || errors.As(err, &uaerr) || errors.As(err, &hnerr) || errors.As(err, &inv)
}

// stage is how far a connection attempt got.
type stage int

const (
	stageNone         stage = iota
	stageProxyConnect       // TCP (and TLS) to the proxy
	stageConnect            // CONNECT sent, waiting for the proxy's answer
	stageDial               // TCP to the endpoint, direct
	stageHandshake          // TLS with the endpoint
	stageDone               // connected
)

// dialError is a connection attempt that failed at a stage.
type dialError struct {
	stage stage
	addr  string // endpoint host:port
	proxy string // redacted proxy URL, "" when direct
	err   error
}

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dialProgress records how far the dials made for one request got, so that a
// request that times out can say where it was stuck. The transport dials
// with a context detached from the request's cancellation but carrying its
// values, so the request hands it down as a context value.
type dialProgress struct {
	mu    sync.Mutex
	stage stage
	addr  string
	proxy string
	at    time.Time // when stage was entered (diagnose.go times the links)
}

type progressKey struct{}

func withProgress(ctx context.Context, p *dialProgress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

func (p *dialProgress) set(s stage, addr, proxy string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.stage, p.addr, p.proxy, p.at = s, addr, proxy, time.Now()
	p.mu.Unlock()
}

func (p *dialProgress) get() (stage, string, string) {
	if p == nil {
		return stageNone, "", ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stage, p.addr, p.proxy
}

// describe says what a stuck connection attempt was doing.
func (s stage) describe(addr, proxy string) string {
	switch s {
	case stageProxyConnect:
		return "connecting to proxy " + proxy
	case stageConnect:
		return fmt.Sprintf("waiting for proxy %s to open a tunnel to %s (CONNECT)", proxy, addr)
	case stageDial:
		return "connecting to " + addr
	case stageHandshake:
		if proxy != "" {
			return fmt.Sprintf("in the TLS handshake with %s through proxy %s", addr, proxy)
		}
		return "in the TLS handshake with " + addr
	}
	return ""
}

// route is how the client reaches one port of the endpoint.
type route struct {
	proxy  *url.URL // nil: direct
	source string   // "endpoint.proxy", "HTTPS_PROXY", ...
	alpn   []string // the ALPN offer on that port
}

// endpointDialer makes the transport's connections: TLS to the endpoint,
// direct or through a CONNECT tunnel.
type endpointDialer struct {
	timeout time.Duration
	tls     *tls.Config // the template: certificate, roots, SNI, ALPN of Port
	routes  map[int]route
	primary int // Config.Port
	log     *slog.Logger
}

// routeFor returns how port is reached; a port other than the configured
// two (not used) gets the primary's proxy without ALPN.
func (d *endpointDialer) routeFor(port int) route {
	if rt, ok := d.routes[port]; ok {
		return rt
	}
	rt := d.routes[d.primary]
	rt.alpn = nil
	return rt
}

// dialTLS is the transport's DialTLSContext: a TLS connection to addr
// (host:port of the endpoint), direct or through the route's proxy.
func (d *endpointDialer) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(portStr)
	rt := d.routeFor(port)
	progress, _ := ctx.Value(progressKey{}).(*dialProgress)
	// The transport's dial context has no deadline of its own. Give it a
	// little more than the request's, so a slow proxy is reported by the
	// request's deadline (which names the stage it was stuck in) rather
	// than by whichever of two equal timers fires first.
	ctx, cancel := context.WithTimeout(ctx, d.timeout+d.timeout/2)
	defer cancel()

	var conn net.Conn
	proxyName := ""
	if rt.proxy != nil {
		proxyName = rt.proxy.Redacted()
		conn, err = d.tunnel(ctx, rt, addr, progress)
	} else {
		progress.set(stageDial, addr, "")
		nd := net.Dialer{KeepAlive: 30 * time.Second}
		conn, err = nd.DialContext(ctx, network, addr)
		if err != nil {
			err = &dialError{stage: stageDial, addr: addr, err: err}
		}
	}
	if err != nil {
		return nil, err
	}
	progress.set(stageHandshake, addr, proxyName)
	tc := tls.Client(conn, d.tlsConfigFor(host, rt))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		if ie := inspectionFromHandshake(host, addr, proxyName, err); ie != nil {
			err = ie
		}
		return nil, &dialError{stage: stageHandshake, addr: addr, proxy: proxyName, err: err}
	}
	progress.set(stageDone, addr, proxyName)
	return tc, nil
}

// tlsConfigFor derives the handshake's configuration from the client's
// (certificate, roots, SNI, whatever callbacks it has), with the route's
// ALPN offer and, for AWS hosts, the check that the chain ends at Amazon.
func (d *endpointDialer) tlsConfigFor(host string, rt route) *tls.Config {
	cfg := d.tls.Clone()
	cfg.NextProtos = rt.alpn
	if isAmazonHost(host) {
		prev := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if prev != nil {
				if err := prev(cs); err != nil {
					return err
				}
			}
			return checkAmazonIssuer(host, cs)
		}
	}
	return cfg
}

// tunnel connects to the route's proxy and opens a CONNECT tunnel to addr.
func (d *endpointDialer) tunnel(ctx context.Context, rt route, addr string, progress *dialProgress) (net.Conn, error) {
	px := rt.proxy
	name := px.Redacted()
	perr := func(reason ProxyReason, err error) *dialError {
		st := stageProxyConnect
		if reason != ProxyUnreachable && reason != ProxyTLSFailed {
			st = stageConnect
		}
		return &dialError{stage: st, addr: addr, proxy: name,
			err: &ProxyError{Reason: reason, Proxy: name, Source: rt.source, Target: addr, User: px.User.Username(), Err: err}}
	}
	progress.set(stageProxyConnect, addr, name)
	nd := net.Dialer{KeepAlive: 30 * time.Second}
	conn, err := nd.DialContext(ctx, "tcp", px.Host)
	if err != nil {
		return nil, perr(ProxyUnreachable, err)
	}
	// Bound the proxy's TLS and its CONNECT answer by ctx.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if px.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{
			MinVersion: tls.VersionTLS12,
			ServerName: px.Hostname(),
			RootCAs:    d.tls.RootCAs,
			NextProtos: []string{"http/1.1"},
		})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, perr(ProxyTLSFailed, ctxErr(ctx, err))
		}
		conn = tc
	}
	progress.set(stageConnect, addr, name)
	var req strings.Builder
	fmt.Fprintf(&req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sensor-agent\r\n", addr, addr)
	if px.User != nil {
		pass, _ := px.User.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(px.User.Username() + ":" + pass))
		req.WriteString("Proxy-Authorization: Basic " + cred + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		_ = conn.Close()
		return nil, perr(ProxyUnreachable, ctxErr(ctx, err))
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		_ = conn.Close()
		err = ctxErr(ctx, err)
		if isConnDropped(err) || isTimeout(err) {
			return nil, perr(ProxyUnreachable, fmt.Errorf("no answer to CONNECT: %w", err))
		}
		return nil, perr(ProxyProtocol, err)
	}
	if resp.StatusCode/100 == 2 {
		if !stop() {
			_ = conn.Close()
			return nil, perr(ProxyUnreachable, ctx.Err())
		}
		_ = conn.SetDeadline(time.Time{})
		d.log.Debug("proxy tunnel open", "proxy", name, "target", addr, "status", resp.Status)
		if br.Buffered() > 0 {
			return &bufferedConn{Conn: conn, r: br}, nil
		}
		return conn, nil
	}
	_ = conn.Close()
	e := perr(0, nil)
	pe := e.err.(*ProxyError)
	pe.Status = resp.StatusCode
	pe.StatusText = strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
	var details []string
	switch {
	case resp.StatusCode == http.StatusProxyAuthRequired:
		pe.Reason = ProxyAuthRejected
		if px.User == nil {
			pe.Reason = ProxyAuthRequired
		}
		var schemes []string
		for _, v := range resp.Header.Values("Proxy-Authenticate") {
			s, _, _ := strings.Cut(strings.TrimSpace(v), " ")
			if s != "" {
				schemes = append(schemes, s)
			}
		}
		if len(schemes) > 0 {
			details = append(details, "offers "+strings.Join(schemes, ", "))
		}
	case resp.StatusCode == http.StatusForbidden:
		pe.Reason = ProxyForbidden
	case resp.StatusCode >= 500:
		pe.Reason = ProxyUpstreamFailed
	default:
		pe.Reason = ProxyRefused
	}
	if v := resp.Header.Get("X-Squid-Error"); v != "" && pe.Reason != ProxyAuthRequired && pe.Reason != ProxyAuthRejected {
		details = append(details, v)
	}
	pe.Detail = strings.Join(details, "; ")
	return nil, e
}

// ctxErr prefers ctx's error to the I/O error it caused through a deadline.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && isTimeout(err) {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// bufferedConn is a tunnel whose first bytes were read along with the
// proxy's answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// resolveRoutes decides, once, how each port of the endpoint is reached.
func resolveRoutes(cfg Config, primaryALPN bool, getenv func(string) string, logger *slog.Logger) (map[int]route, error) {
	routes := map[int]route{}
	ports := []int{cfg.Port}
	if cfg.FallbackPort != 0 {
		ports = append(ports, cfg.FallbackPort)
	}
	fixed, err := ParseProxyURL(cfg.Proxy)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	for i, port := range ports {
		rt := route{}
		switch {
		case i == 0 && primaryALPN, i > 0 && port == 443:
			// The fallback port goes without ALPN (8443), unless it is 443.
			rt.alpn = []string{ALPNProtocol}
		}
		if fixed != nil {
			rt.proxy, rt.source = fixed, "endpoint.proxy"
		} else {
			px, source, err := ProxyFromEnvironment(getenv, cfg.Host, port)
			if err != nil {
				return nil, fmt.Errorf("publisher: %w", err)
			}
			if px == nil && source != "" {
				logger.Debug("proxy environment does not apply to the endpoint: connecting directly",
					"endpoint", net.JoinHostPort(cfg.Host, strconv.Itoa(port)), "decided_by", source)
			}
			rt.proxy, rt.source = px, source
		}
		if rt.proxy != nil && (i == 0 || routes[cfg.Port].proxy == nil) {
			logger.Info("connecting through proxy", "proxy", rt.proxy.Redacted(), "source", rt.source,
				"endpoint", net.JoinHostPort(cfg.Host, strconv.Itoa(port)))
		}
		routes[port] = rt
	}
	return routes, nil
}

// Port fallback.
//
// Policy: publishes go to the active port, Config.Port at first. When an
// attempt finds the active port unreachable (connect refused or timed out,
// a proxy that forbids CONNECT to it or cannot reach it, a connection cut
// during the TLS handshake), the same publish is tried at once on the other
// port. A port that answers becomes the active one, and the switch is
// logged once (a warning when leaving Config.Port, info when coming back).
// While on the fallback port, the first publish after FallbackRecheck (10
// minutes) since Config.Port was last found unreachable tries Config.Port
// first, and stays there if it answers.

type portState struct {
	mu        sync.Mutex
	active    int              // 0 until the first switch: Config.Port
	recheckAt time.Time        // when to try Config.Port again while on the fallback
	now       func() time.Time // nil: time.Now
}

func (s *portState) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// firstPort picks the port to try first, claiming the recheck of
// Config.Port when it is due (one publish at a time makes it).
func (c *Client) firstPort() int {
	s := &c.ports
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == 0 || s.active == c.cfg.Port {
		return c.cfg.Port
	}
	if now := s.clock(); !now.Before(s.recheckAt) {
		s.recheckAt = now.Add(FallbackRecheck)
		return c.cfg.Port
	}
	return s.active
}

// primaryUnreachable postpones the next try of Config.Port.
func (c *Client) primaryUnreachable() {
	s := &c.ports
	s.mu.Lock()
	s.recheckAt = s.clock().Add(FallbackRecheck)
	s.mu.Unlock()
}

// settle makes port, which just answered, the active port.
func (c *Client) settle(port int, cause error) {
	s := &c.ports
	s.mu.Lock()
	prev := s.active
	if prev == 0 {
		prev = c.cfg.Port
	}
	if prev == port {
		s.mu.Unlock()
		return
	}
	s.active = port
	if port != c.cfg.Port {
		s.recheckAt = s.clock().Add(FallbackRecheck)
	}
	s.mu.Unlock()
	if port != c.cfg.Port {
		c.log.Warn(fmt.Sprintf("port %d is unreachable: publishing on fallback port %d until it is reachable again (tried every %s)",
			c.cfg.Port, port, FallbackRecheck),
			"endpoint", c.endpoint, "fallback", c.endpointOn(port), "alpn", len(c.dialer.routeFor(port).alpn) > 0, "err", cause)
		return
	}
	// A kept-alive connection to the fallback port is left to the idle
	// timeout: closing idle connections now would close the one to Port.
	c.log.Info(fmt.Sprintf("port %d is reachable again: leaving fallback port %d", port, prev), "endpoint", c.endpoint)
}

// publishFallback publishes on the active port and, if that is
// unreachable, on the other one.
func (c *Client) publishFallback(ctx context.Context, topic string, payload []byte) (Result, error) {
	first := c.firstPort()
	res, r, err := c.publishOn(ctx, first, topic, payload)
	if r == reachConnected {
		c.settle(first, nil)
	}
	if r != reachUnreachable || ctx.Err() != nil {
		return res, err
	}
	other := c.cfg.FallbackPort
	if first != c.cfg.Port {
		other = c.cfg.Port
	} else {
		c.primaryUnreachable()
	}
	c.log.Debug("port unreachable, trying the other one", "port", first, "other", other, "err", err)
	res2, r2, err2 := c.publishOn(ctx, other, topic, payload)
	if r2 == reachConnected {
		c.settle(other, err)
		return res2, err2
	}
	if other == c.cfg.Port {
		c.primaryUnreachable()
	}
	if first == c.cfg.Port {
		return res2, bothPortsFailed(topic, first, err, other, err2)
	}
	return res2, bothPortsFailed(topic, other, err2, first, err)
}

// bothPortsFailed reports the failures on both ports in one *Error: Retry
// if either may pass by itself.
func bothPortsFailed(topic string, port int, err error, fallback int, ferr error) error {
	e1, ok1 := err.(*Error)
	e2, ok2 := ferr.(*Error)
	if !ok1 || !ok2 {
		return ferr
	}
	kind := e1.Kind
	if e2.Kind == Retry {
		kind = Retry
	}
	return &Error{
		Kind:   kind,
		Topic:  topic,
		detail: fmt.Sprintf("port %d: %s; fallback port %d: %s", port, e1.body(), fallback, e2.body()),
		Err:    errors.Join(err, ferr),
	}
}

// dialReach judges a request that failed before it had a connection:
// was the port unreachable, so that the other port may get through?
func dialReach(parent, attempt context.Context, err error, progress *dialProgress) reach {
	if parent.Err() != nil {
		return reachUnknown
	}
	if pe, ok := errors.AsType[*ProxyError](err); ok {
		if pe.Reason == ProxyForbidden || pe.Reason == ProxyUpstreamFailed {
			return reachUnreachable
		}
		return reachUnknown
	}
	if de, ok := errors.AsType[*dialError](err); ok {
		switch {
		case de.stage == stageDial:
			if _, dns := errors.AsType[*net.DNSError](err); dns {
				return reachUnknown // the other port has the same name
			}
			return reachUnreachable
		case de.stage == stageHandshake && (isConnDropped(de.err) || isTimeout(de.err)):
			return reachUnreachable
		}
		return reachUnknown
	}
	if attempt.Err() != nil {
		switch st, _, _ := progress.get(); st {
		case stageDial, stageConnect, stageHandshake:
			return reachUnreachable
		}
	}
	return reachUnknown
}
