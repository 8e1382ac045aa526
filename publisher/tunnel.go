package publisher

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Proxy support. The publisher dials the proxy itself (TCP, or TLS to an
// https:// proxy), asks it for a tunnel with CONNECT and runs the TLS session
// to AWS end to end inside the tunnel, with the publisher's own tls.Config:
// the client certificate and the ALPN offer reach AWS untouched, and every
// answer of the proxy is reported by what it means (ProxyError).
//
// The CONNECT tunnel is written by hand rather than left to
// http.Transport.Proxy (checked against Go 1.26's transport.go).
// OnProxyConnectResponse does see the proxy's answer and could return an
// error carrying its auth schemes, X-Squid-Error and page title; what the
// standard path cannot give is:
//   - the tunnel alone: the doctor (Prober.Tunnel) opens the tunnel, then
//     runs and inspects the TLS handshake itself over it (client certificate
//     requested or not, ALPN, chain) and then one request; the transport
//     only hands back a finished HTTP exchange;
//   - the stage a timeout hit: httptrace has no event for "CONNECT sent",
//     and TLSHandshakeStart fires alike for an https:// proxy and for the
//     endpoint, so telling "proxy slow to answer CONNECT" from "TLS with AWS
//     stuck" needs the same bookkeeping as dialProgress;
//   - a TLS configuration per port: the transport has one TLSClientConfig,
//     while 443 offers x-amzn-http-ca and the fallback port offers nothing
//     (and DialTLSContext, set, would be used to dial the proxy instead);
//   - any 2xx as success: the transport accepts only 200.

// tunnel connects to the route's proxy and opens a CONNECT tunnel to addr.
func (d *endpointDialer) tunnel(ctx context.Context, rt route, addr string, progress *dialProgress) (net.Conn, error) {
	px := rt.proxy
	// reached: CONNECT was being sent or answered.
	perr := func(reason ProxyReason, reached bool, err error) *dialError {
		return proxyDialError(rt, addr, &ProxyError{Reason: reason, Reached: reached, Err: err})
	}
	progress.set(stageProxyConnect, addr, px.Redacted())
	conn, reason, err := d.dialProxy(ctx, px)
	if err != nil {
		return nil, perr(reason, false, err)
	}
	// Bound the proxy's TLS and its CONNECT answer by ctx.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	progress.set(stageConnect, addr, px.Redacted())
	if _, err := io.WriteString(conn, connectRequest(px, addr)); err != nil {
		_ = conn.Close()
		return nil, perr(ProxyUnreachable, true, ctxErr(ctx, err))
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		_ = conn.Close()
		err = ctxErr(ctx, err)
		if isConnDropped(err) || IsTimeout(err) {
			return nil, perr(ProxyUnreachable, true, fmt.Errorf("no answer to CONNECT: %w", err))
		}
		return nil, perr(ProxyProtocol, true, err)
	}
	if resp.StatusCode/100 != 2 {
		pe := refusal(resp, px.User != nil)
		_ = conn.Close()
		return nil, proxyDialError(rt, addr, pe)
	}
	if !stop() {
		_ = conn.Close()
		return nil, perr(ProxyUnreachable, true, ctx.Err())
	}
	_ = conn.SetDeadline(time.Time{})
	d.log.Debug("proxy tunnel open", "proxy", px.Redacted(), "target", addr, "status", resp.Status)
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

// proxyDialError completes pe with the route's facts and places it at the
// stage its reason belongs to.
func proxyDialError(rt route, addr string, pe *ProxyError) *dialError {
	name := rt.proxy.Redacted()
	pe.Proxy, pe.Source, pe.Target, pe.User = name, rt.source, addr, rt.proxy.User.Username()
	st := stageConnect
	if pe.Reason == ProxyUnreachable || pe.Reason == ProxyTLSFailed {
		st = stageProxyConnect
	}
	return &dialError{stage: st, addr: addr, proxy: name, err: pe}
}

// dialProxy opens the connection to the proxy: TCP, and TLS with an
// https:// proxy.
// A failure says which link broke: ProxyUnreachable or ProxyTLSFailed.
func (d *endpointDialer) dialProxy(ctx context.Context, px *url.URL) (net.Conn, ProxyReason, error) {
	nd := net.Dialer{KeepAlive: 30 * time.Second}
	conn, err := nd.DialContext(ctx, "tcp", px.Host)
	if err != nil {
		return nil, ProxyUnreachable, err
	}
	if px.Scheme != "https" {
		return conn, 0, nil
	}
	tc := tls.Client(conn, &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: px.Hostname(),
		RootCAs:    d.tls.RootCAs,
		NextProtos: []string{"http/1.1"},
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, ProxyTLSFailed, ctxErr(ctx, err)
	}
	return tc, 0, nil
}

// connectRequest is the CONNECT request for addr, with Basic credentials
// when the proxy URL has a user.
func connectRequest(px *url.URL, addr string) string {
	var req strings.Builder
	fmt.Fprintf(&req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sensor-agent\r\n", addr, addr)
	if px.User != nil {
		pass, _ := px.User.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(px.User.Username() + ":" + pass))
		req.WriteString("Proxy-Authorization: Basic " + cred + "\r\n")
	}
	req.WriteString("\r\n")
	return req.String()
}

// maxProxyPage is how much of a proxy's error page is read for its title.
const maxProxyPage = 16 << 10

// refusal reads what a proxy said with an answer to CONNECT that is not
// 2xx; withUser says whether credentials were sent.
func refusal(resp *http.Response, withUser bool) *ProxyError {
	pe := &ProxyError{
		Reached:    true,
		Status:     resp.StatusCode,
		StatusText: strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode))),
	}
	switch {
	case resp.StatusCode == http.StatusProxyAuthRequired:
		pe.Reason = ProxyAuthRejected
		if !withUser {
			pe.Reason = ProxyAuthRequired
		}
		for _, v := range resp.Header.Values("Proxy-Authenticate") {
			if s, _, _ := strings.Cut(strings.TrimSpace(v), " "); s != "" {
				pe.AuthSchemes = append(pe.AuthSchemes, s)
			}
		}
	case resp.StatusCode == http.StatusForbidden:
		pe.Reason = ProxyForbidden
	case resp.StatusCode >= 500:
		pe.Reason = ProxyUpstreamFailed
	default:
		pe.Reason = ProxyRefused
	}
	if pe.Reason != ProxyAuthRequired && pe.Reason != ProxyAuthRejected {
		pe.SquidError = resp.Header.Get("X-Squid-Error")
	}
	if resp.Body != nil {
		page, _ := io.ReadAll(io.LimitReader(resp.Body, maxProxyPage))
		if isHTML(resp.Header, string(page)) {
			pe.PageTitle = htmlTitle(string(page))
		}
	}
	return pe
}

// bufferedConn is a tunnel whose first bytes were read along with the
// proxy's answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
