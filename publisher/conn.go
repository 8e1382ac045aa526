package publisher

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The publisher speaks HTTP/1.1 itself over its kept-alive TLS connection
// rather than through net/http's Transport: a publish is one request
// written in one TLS record and one response read on the caller's
// goroutine. The Transport's reader and writer goroutines and the channel
// handoffs between them and the caller cost most of a publish's CPU
// (issue 11), and its request building adds headers AWS does not need.
// What the Transport did for us and is kept here: one kept-alive
// connection per port, closed after idleConnTimeout unused; requests on
// several goroutines each get a connection; a connection is reused only
// after a whole, well-framed response; 1xx answers are skipped; redirects
// are never followed (they are answers like any other, see reply.go).

// httpConn is one TLS connection to the endpoint on port.
type httpConn struct {
	net.Conn
	port     int
	br       *bufio.Reader
	wbuf     []byte    // the request being written, kept for the next one
	lastUsed time.Time // when it went idle
}

// connPool keeps at most one idle connection per port (the configured
// port and the fallback port).
type connPool struct {
	mu   sync.Mutex
	idle map[int]*httpConn
}

// get returns the idle connection to port, if there is one still fresh.
func (p *connPool) get(port int) *httpConn {
	p.mu.Lock()
	hc := p.idle[port]
	delete(p.idle, port)
	p.mu.Unlock()
	if hc != nil && time.Since(hc.lastUsed) > idleConnTimeout {
		// Checked on use rather than by a timer, so an idle agent does
		// not wake up for it; a server that closed it meanwhile is
		// handled by the resend on a fresh connection anyway.
		_ = hc.Close()
		return nil
	}
	return hc
}

// put makes hc the idle connection to its port, or closes it when there
// is one already.
func (p *connPool) put(hc *httpConn) {
	hc.lastUsed = time.Now()
	if cap(hc.wbuf) > 16<<10 {
		hc.wbuf = nil // a large message's buffer is not kept
	}
	p.mu.Lock()
	if p.idle == nil {
		p.idle = make(map[int]*httpConn, 2)
	}
	if p.idle[hc.port] == nil {
		p.idle[hc.port] = hc
		hc = nil
	}
	p.mu.Unlock()
	if hc != nil {
		_ = hc.Close()
	}
}

// closeIdle closes the idle connections. As with
// http.Transport.CloseIdleConnections, connections in use are left alone
// and may become idle afterwards (keys.go copes with that).
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, hc := range idle {
		_ = hc.Close()
	}
}

// appendRequest appends the request line, headers and body of a publish
// to addr (host:port). Headers: Host (HTTP/1.1 requires it; without the
// port on 443, its default) and Content-Length (AWS refuses chunked
// bodies). Nothing else: AWS takes the body as raw bytes whatever its
// Content-Type (the MQTT content type is the contentType query
// parameter), and a User-Agent or Accept-Encoding would be bytes on every
// message.
func appendRequest(b []byte, addr string, qos int, topic string, payload []byte) []byte {
	b = append(b, "POST /topics/"...)
	b = append(b, EscapeTopic(topic)...)
	b = append(b, "?qos="...)
	b = strconv.AppendInt(b, int64(qos), 10)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, strings.TrimSuffix(addr, ":443")...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, payload...)
}

// appendShadowRequest appends a Device Shadow request (GET, POST or
// DELETE /things/<thing>/shadow[?name=<name>]) to addr, with the same
// headers as a publish; a request without a body has no Content-Length.
func appendShadowRequest(b []byte, addr, method, thing, name string, body []byte) []byte {
	b = append(b, method...)
	b = append(b, " /things/"...)
	b = append(b, url.PathEscape(thing)...)
	b = append(b, "/shadow"...)
	if name != "" {
		b = append(b, "?name="...)
		b = append(b, url.QueryEscape(name)...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, strings.TrimSuffix(addr, ":443")...)
	if len(body) > 0 || method == http.MethodPost {
		b = append(b, "\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
	}
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// exchange is one round trip's outcome.
type exchange struct {
	resp    *http.Response
	body    []byte // at most maxReplyBody bytes of it
	replied bool   // a byte of the answer was read
	keep    bool   // the connection can carry another request
}

// roundTrip writes a publish request on hc and reads the answer. ctx's end
// interrupts it.
func (hc *httpConn) roundTrip(ctx context.Context, req []byte) (x exchange, err error) {
	stop := context.AfterFunc(ctx, func() { _ = hc.SetDeadline(time.Unix(1, 0)) })
	x, err = hc.exchange(req)
	if !stop() {
		x.keep = false // its deadline is in the past now
	}
	return x, err
}

func (hc *httpConn) exchange(req []byte) (x exchange, err error) {
	// One Write: request line, headers and body in one TLS record (up to
	// 16 KiB), one syscall.
	if _, err := hc.Write(req); err != nil {
		return x, fmt.Errorf("write request: %w", err)
	}
	for {
		if _, err := hc.br.Peek(1); err != nil {
			return x, fmt.Errorf("read response: %w", err)
		}
		x.replied = true
		x.resp, err = http.ReadResponse(hc.br, &http.Request{Method: http.MethodPost})
		if err != nil {
			return x, fmt.Errorf("read response: %w", err)
		}
		// 1xx are interim answers; 101 would switch protocols, which a
		// publish never asks for: it is taken as the answer.
		if code := x.resp.StatusCode; code < 100 || code >= 200 || code == http.StatusSwitchingProtocols {
			break
		}
	}
	x.body, err = io.ReadAll(io.LimitReader(x.resp.Body, maxReplyBody))
	if err != nil {
		return x, fmt.Errorf("read response body: %w", err)
	}
	// Drain what is left, within reason, so the connection can be reused.
	n, derr := io.Copy(io.Discard, io.LimitReader(x.resp.Body, 4*maxReplyBody))
	// Bytes beyond the response would be taken for the next one's.
	x.keep = derr == nil && n < 4*maxReplyBody && !x.resp.Close &&
		x.resp.StatusCode != http.StatusSwitchingProtocols && hc.br.Buffered() == 0
	return x, nil
}
