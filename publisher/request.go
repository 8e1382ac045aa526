package publisher

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"time"
)

// One request on one port: a publish (Publish in client.go) or a shadow
// request (shadow.go), sent by send directly, or through sendFallback
// (fallback.go) when there is a fallback port. The reply is judged by the
// caller.

// call is one request: a publish when method is "", else a shadow
// request.
type call struct {
	topic               string // publish
	method, thing, name string // shadow request
	body                []byte
	op                  string // names a shadow request in errors ("shadow get pi/sensor-agent")
}

// appendTo appends the request's bytes for addr.
func (cl *call) appendTo(b []byte, addr string, qos int) []byte {
	if cl.method == "" {
		return appendRequest(b, addr, qos, cl.topic, cl.body)
	}
	return appendShadowRequest(b, addr, cl.method, cl.thing, cl.name, cl.body)
}

// netError is classifyNetError for the call.
func (cl *call) netError(endpoint string, timeout time.Duration, parent, attempt context.Context, err error) *Error {
	e := classifyNetError(cl.topic, endpoint, timeout, parent, attempt, err)
	e.op = cl.op
	return e
}

// sent is a request's answer and where it came from.
type sent struct {
	exchange
	endpoint string
}

// send makes the request, on the fallback port too when there is one.
// The error is a failure before any answer, as *Error.
func (c *Client) send(ctx context.Context, cl *call) (sent, error) {
	if c.cfg.FallbackPort == 0 {
		x, _, err := c.sendOn(ctx, c.cfg.Port, cl)
		return x, err
	}
	return c.sendFallback(ctx, cl)
}

// sendOn makes the request once on port, resending once on a fresh
// connection when a kept-alive one turned out to be closed. It also says
// whether the port was reached, or found unreachable (see sendFallback).
func (c *Client) sendOn(ctx context.Context, port int, cl *call) (sent, reach, error) {
	x, info, err := c.attempt(ctx, port, cl)
	if err != nil && info.stale {
		c.log.Debug("kept-alive connection was closed by the server, reconnecting", "endpoint", c.endpointOn(port), "err", err)
		x, info, err = c.attempt(ctx, port, cl)
	}
	return x, info.reach, err
}

// reach is what one attempt learnt about its port.
type reach int

const (
	reachUnknown     reach = iota // e.g. cancelled, DNS, proxy credentials
	reachConnected                // a TLS connection to the port was used
	reachUnreachable              // connect failed, or the proxy will not tunnel to the port
)

type attemptInfo struct {
	stale bool // failed on a reused connection before any reply byte
	reach reach
}

// endpointOn returns host:port of the endpoint on port.
func (c *Client) endpointOn(port int) string {
	if port == c.cfg.Port {
		return c.endpoint
	}
	return net.JoinHostPort(c.cfg.Host, strconv.Itoa(port))
}

// attempt makes one request to port, on its idle connection or a new one.
func (c *Client) attempt(parent context.Context, port int, cl *call) (x sent, info attemptInfo, err error) {
	ctx, cancel := context.WithTimeout(parent, c.cfg.Timeout)
	defer cancel()
	x.endpoint = c.endpointOn(port)
	hc := c.pool.get(port)
	reused := hc != nil
	if hc == nil {
		if hc, info.reach, err = c.dial(parent, ctx, port, x.endpoint, cl); err != nil {
			return x, info, err
		}
	}
	info.reach = reachConnected
	hc.wbuf = cl.appendTo(hc.wbuf[:0], x.endpoint, c.cfg.QoS)
	x.exchange, err = hc.roundTrip(ctx, hc.wbuf)
	if x.keep {
		c.pool.put(hc)
	} else {
		_ = hc.Close()
	}
	if err != nil {
		info.stale = reused && !x.replied && ctx.Err() == nil && isConnDropped(err)
		return x, info, cl.netError(x.endpoint, c.cfg.Timeout, parent, ctx, err)
	}
	return x, info, nil
}

// publishReply judges a publish's answer.
func (c *Client) publishReply(x sent, topic string) (Result, error) {
	res, err := replyResult(x.resp, x.body, topic)
	if res.Warning != "" && err == nil && !c.oddReply.Swap(true) {
		// Once per Client: a captive portal would say it on every publish.
		c.log.Warn("the endpoint took a publish with an answer that is not AWS IoT's; taken as delivered, but if a captive portal or proxy answers in AWS IoT's place, messages are being lost (logged once)",
			"endpoint", x.endpoint, "answer", res.Warning)
	}
	return res, err
}

// dial opens a connection to port for the request cl, or says why not and
// whether the port was found unreachable.
func (c *Client) dial(parent, ctx context.Context, port int, endpoint string, cl *call) (*httpConn, reach, error) {
	// The dialer reports its progress here, for timeouts and the fallback.
	progress := &dialProgress{}
	conn, err := c.dialer.dialTLS(withProgress(ctx, progress), "tcp", endpoint)
	if err != nil {
		e := cl.netError(endpoint, c.cfg.Timeout, parent, ctx, err)
		if st, addr, px := progress.get(); parent.Err() == nil && ctx.Err() != nil && st != stageNone && st != stageDone {
			e.Message += ": still " + st.describe(addr, px)
		}
		return nil, dialReach(parent, ctx, err, progress), e
	}
	c.checkALPN(port, conn)
	return &httpConn{Conn: conn, port: port, br: bufio.NewReaderSize(conn, 4<<10)}, reachConnected, nil
}

// checkALPN warns when a new connection to a port where the client offers
// x-amzn-http-ca did not negotiate it: on 443 AWS IoT then ignores the
// client certificate and answers 403 Missing Authentication Token. It logs
// when that changes, not for every connection.
func (c *Client) checkALPN(port int, conn net.Conn) {
	if len(c.dialer.routeFor(port).alpn) == 0 {
		return
	}
	tc, ok := conn.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return
	}
	cs := tc.ConnectionState()
	endpoint := c.endpointOn(port)
	if cs.NegotiatedProtocol == ALPNProtocol {
		if c.alpnMissing.Swap(false) {
			c.log.Info("ALPN "+ALPNProtocol+" is negotiated again", "endpoint", endpoint)
		}
		return
	}
	if c.alpnMissing.Swap(true) {
		return
	}
	args := []any{"endpoint", endpoint, "negotiated", cs.NegotiatedProtocol}
	if px := c.dialer.routeFor(port).proxy; px != nil {
		args = append(args, "proxy", px.Redacted())
	}
	if len(cs.PeerCertificates) > 0 {
		args = append(args, "server_cert_issuer", nameOf(cs.PeerCertificates[0].Issuer.CommonName, cs.PeerCertificates[0].Issuer.String()))
	}
	c.log.Warn("ALPN "+ALPNProtocol+" was offered but the server did not select it: on port 443 AWS IoT then ignores the client certificate (403 Missing Authentication Token); a proxy or load balancer terminating TLS, a TLS-inspecting middlebox, or a server that is not AWS IoT is answering", args...)
}
