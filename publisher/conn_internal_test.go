package publisher

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAppendRequest(t *testing.T) {
	for _, tt := range []struct {
		addr string
		qos  int
		want string
	}{
		{"abc-ats.iot.eu-west-1.amazonaws.com:443", 1, "POST /topics/sensors%2Fpi%2Fs0?qos=1 HTTP/1.1\r\nHost: abc-ats.iot.eu-west-1.amazonaws.com\r\nContent-Length: 2\r\n\r\n{}"},
		{"abc-ats.iot.eu-west-1.amazonaws.com:8443", 0, "POST /topics/sensors%2Fpi%2Fs0?qos=0 HTTP/1.1\r\nHost: abc-ats.iot.eu-west-1.amazonaws.com:8443\r\nContent-Length: 2\r\n\r\n{}"},
		{"[::1]:443", 1, "POST /topics/sensors%2Fpi%2Fs0?qos=1 HTTP/1.1\r\nHost: [::1]\r\nContent-Length: 2\r\n\r\n{}"},
	} {
		if got := string(appendRequest(nil, tt.addr, tt.qos, "sensors/pi/s0", []byte("{}"))); got != tt.want {
			t.Errorf("appendRequest(%s) =\n%q\nwant\n%q", tt.addr, got, tt.want)
		}
	}
	// What net/http makes of it: a well-formed request.
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(appendRequest(nil, "h:8443", 1, "a b/c", []byte("xyz"))))))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(req.Body)
	if req.Method != "POST" || req.URL.EscapedPath() != "/topics/a%20b%2Fc" || req.Host != "h:8443" || req.ContentLength != 3 || string(body) != "xyz" {
		t.Errorf("parsed %s %s host %s length %d body %q", req.Method, req.URL.EscapedPath(), req.Host, req.ContentLength, body)
	}
}

func TestAppendShadowRequest(t *testing.T) {
	for _, tt := range []struct {
		addr, method, thing, name, body, want string
	}{
		{"h:443", "GET", "pi-1", "", "", "GET /things/pi-1/shadow HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"h:8443", "GET", "pi:1", "sensor-agent", "", "GET /things/pi:1/shadow?name=sensor-agent HTTP/1.1\r\nHost: h:8443\r\n\r\n"},
		{"h:443", "POST", "pi", "$x", `{"state":{}}`, "POST /things/pi/shadow?name=%24x HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n{\"state\":{}}"},
		{"h:443", "POST", "pi", "", "", "POST /things/pi/shadow HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
		{"h:443", "DELETE", "pi", "n", "", "DELETE /things/pi/shadow?name=n HTTP/1.1\r\nHost: h\r\n\r\n"},
	} {
		got := string(appendShadowRequest(nil, tt.addr, tt.method, tt.thing, tt.name, []byte(tt.body)))
		if got != tt.want {
			t.Errorf("appendShadowRequest(%s %s %s) =\n%q\nwant\n%q", tt.method, tt.thing, tt.name, got, tt.want)
			continue
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(got)))
		if err != nil {
			t.Fatal(err)
		}
		if req.Method != tt.method || req.URL.Query().Get("name") != tt.name || req.ContentLength != int64(len(tt.body)) {
			t.Errorf("parsed %s name %q length %d", req.Method, req.URL.Query().Get("name"), req.ContentLength)
		}
	}
}

// exchangeWith runs one exchange on a pipe whose other end answers with
// answer after reading the request.
func exchangeWith(t *testing.T, answer string) (exchange, *httpConn, error) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	go func() {
		if _, err := http.ReadRequest(bufio.NewReader(server)); err != nil {
			return
		}
		_, _ = io.WriteString(server, answer)
	}()
	hc := &httpConn{Conn: client, br: bufio.NewReader(client)}
	x, err := hc.roundTrip(context.Background(), appendRequest(nil, "h:443", 1, "t", []byte("{}")))
	return x, hc, err
}

const okBody = `{"message":"OK","traceId":"x"}`

func TestExchangeKeepsOnlyWellFramedAnswers(t *testing.T) {
	ok := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n" + okBody
	for _, tt := range []struct {
		name, answer string
		status       int
		keep         bool
	}{
		{"AWS's answer", ok, 200, true},
		{"interim answers skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n" + ok, 200, true},
		{"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 30\r\n\r\n" + okBody, 200, false},
		{"chunked", "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n1e\r\n" + okBody + "\r\n0\r\n\r\n", 503, true},
		{"bytes after the answer", ok + "HTTP/1.1 200 OK\r\n", 200, false},
		{"redirect not followed", "HTTP/1.1 302 Found\r\nLocation: http://portal/\r\nContent-Length: 0\r\n\r\n", 302, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x, _, err := exchangeWith(t, tt.answer)
			if err != nil {
				t.Fatal(err)
			}
			if x.resp.StatusCode != tt.status || x.keep != tt.keep || !x.replied {
				t.Errorf("status %d keep %v replied %v, want %d keep %v", x.resp.StatusCode, x.keep, x.replied, tt.status, tt.keep)
			}
			if tt.status != 302 && string(x.body) != okBody {
				t.Errorf("body %q", x.body)
			}
		})
	}
}

func TestExchangeBodyLimit(t *testing.T) {
	huge := strings.Repeat("x", 6*maxReplyBody)
	x, _, err := exchangeWith(t, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(huge))+"\r\n\r\n"+huge)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.body) != maxReplyBody || x.keep {
		t.Errorf("read %d bytes of the body, keep %v; want %d, false", len(x.body), x.keep, maxReplyBody)
	}
}

func TestExchangeClosedBeforeAnswer(t *testing.T) {
	client, server := net.Pipe()
	go func() {
		_, _ = http.ReadRequest(bufio.NewReader(server))
		server.Close()
	}()
	hc := &httpConn{Conn: client, br: bufio.NewReader(client)}
	x, err := hc.roundTrip(context.Background(), appendRequest(nil, "h:443", 1, "t", []byte("{}")))
	if err == nil || x.replied || !isConnDropped(err) {
		t.Errorf("err %v, replied %v: want a dropped connection before any reply byte", err, x.replied)
	}
}

func TestRoundTripCancelled(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	go func() { _, _ = http.ReadRequest(bufio.NewReader(server)) }() // and never answers
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	hc := &httpConn{Conn: client, br: bufio.NewReader(client)}
	x, err := hc.roundTrip(ctx, appendRequest(nil, "h:443", 1, "t", []byte("{}")))
	if !IsTimeout(err) || x.keep {
		t.Errorf("err %v keep %v, want a timeout", err, x.keep)
	}
}

func TestPoolExpiresIdleConnections(t *testing.T) {
	var p connPool
	a, b := net.Pipe()
	defer b.Close()
	hc := &httpConn{Conn: a, port: 443}
	p.put(hc)
	if got := p.get(443); got != hc {
		t.Fatalf("get = %v, want the idle connection", got)
	}
	p.put(hc)
	hc.lastUsed = time.Now().Add(-idleConnTimeout - time.Second)
	if got := p.get(443); got != nil {
		t.Fatalf("get = %v, want none: idle too long", got)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("the expired connection is not closed: write = %v", err)
	}
	// One idle connection per port: a second one is closed.
	c, d := net.Pipe()
	defer d.Close()
	e, f := net.Pipe()
	defer f.Close()
	p.put(&httpConn{Conn: c, port: 8443})
	p.put(&httpConn{Conn: e, port: 8443})
	if _, err := e.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("a second idle connection to a port is kept: write = %v", err)
	}
	p.closeIdle()
	if _, err := c.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("closeIdle left a connection open: write = %v", err)
	}
}
