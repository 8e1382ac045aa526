package publisher

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strconv"
)

// One publish request on one port: Publish (client.go) calls publishOn
// directly, or through publishFallback (fallback.go) when there is a
// fallback port.

// publishOn publishes once on port, resending once on a fresh connection
// when a kept-alive one turned out to be closed. It also says whether the
// port was reached, or found unreachable (see publishFallback).
func (c *Client) publishOn(ctx context.Context, port int, topic string, payload []byte) (Result, reach, error) {
	res, info, err := c.attempt(ctx, port, topic, payload)
	if err != nil && info.stale {
		c.log.Debug("kept-alive connection was closed by the server, reconnecting", "endpoint", c.endpointOn(port), "err", err)
		res, info, err = c.attempt(ctx, port, topic, payload)
	}
	return res, info.reach, err
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
func (c *Client) attempt(parent context.Context, port int, topic string, payload []byte) (res Result, info attemptInfo, err error) {
	ctx, cancel := context.WithTimeout(parent, c.cfg.Timeout)
	defer cancel()
	endpoint := c.endpointOn(port)
	hc := c.pool.get(port)
	reused := hc != nil
	if hc == nil {
		if hc, info.reach, err = c.dial(parent, ctx, port, endpoint, topic); err != nil {
			return Result{}, info, err
		}
	}
	info.reach = reachConnected
	hc.wbuf = appendRequest(hc.wbuf[:0], endpoint, c.cfg.QoS, topic, payload)
	x, err := hc.roundTrip(ctx, hc.wbuf)
	if x.keep {
		c.pool.put(hc)
	} else {
		_ = hc.Close()
	}
	if err != nil {
		info.stale = reused && !x.replied && ctx.Err() == nil && isConnDropped(err)
		return Result{}, info, classifyNetError(topic, endpoint, c.cfg.Timeout, parent, ctx, err)
	}
	res, err = replyResult(x.resp, x.body, topic)
	if res.Warning != "" && err == nil && !c.oddReply.Swap(true) {
		// Once per Client: a captive portal would say it on every publish.
		c.log.Warn("the endpoint took a publish with an answer that is not AWS IoT's; taken as delivered, but if a captive portal or proxy answers in AWS IoT's place, messages are being lost (logged once)",
			"endpoint", endpoint, "answer", res.Warning)
	}
	return res, info, err
}

// dial opens a connection to port for a request of topic, or says why not
// and whether the port was found unreachable.
func (c *Client) dial(parent, ctx context.Context, port int, endpoint, topic string) (*httpConn, reach, error) {
	// The dialer reports its progress here, for timeouts and the fallback.
	progress := &dialProgress{}
	conn, err := c.dialer.dialTLS(withProgress(ctx, progress), "tcp", endpoint)
	if err != nil {
		e := classifyNetError(topic, endpoint, c.cfg.Timeout, parent, ctx, err)
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
