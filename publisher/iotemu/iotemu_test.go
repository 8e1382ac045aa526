package iotemu_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

func start(t *testing.T, opts iotemu.Options) *iotemu.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := iotemu.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// rawClient is a plain net/http client with the emulator's device
// certificate, for requests the publisher would refuse to send.
func rawClient(t *testing.T, tlsCfg *tls.Config) *http.Client {
	t.Helper()
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	tr := &http.Transport{TLSClientConfig: tlsCfg, Protocols: &protocols}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

type request struct {
	method  string
	path    string // sent verbatim, still escaped
	query   string
	header  map[string]string
	body    []byte
	chunked bool
}

type response struct {
	status    int
	errorType string
	requestID string
	allow     string
	conn      string
	message   string
	traceID   string
}

func do(t *testing.T, ctx context.Context, c *http.Client, addr string, r request) (response, error) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	var body io.Reader = bytes.NewReader(r.body)
	if r.chunked {
		body = io.MultiReader(bytes.NewReader(r.body)) // unknown length
	}
	req, err := http.NewRequestWithContext(ctx, r.method, "https://"+addr+"/", body)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = r.path
	req.URL.RawQuery = r.query
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	var b struct{ Message, TraceID string }
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("reply body %q is not JSON: %v", raw, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	return response{
		status:    resp.StatusCode,
		errorType: resp.Header.Get("x-amzn-ErrorType"),
		requestID: resp.Header.Get("x-amzn-RequestId"),
		allow:     resp.Header.Get("Allow"),
		conn:      resp.Header.Get("Connection"),
		message:   b.Message,
		traceID:   b.TraceID,
	}, nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestRequests(t *testing.T) {
	s := start(t, iotemu.Options{})
	alpnClient := rawClient(t, s.PKI().ClientTLSConfig(true))
	plainClient := rawClient(t, s.PKI().ClientTLSConfig(false))
	tests := []struct {
		name      string
		listener  string
		alpn      bool
		req       request
		want      int
		wantName  string // x-amzn-ErrorType without ':'
		wantMsg   string // substring
		wantTopic string
		check     func(*testing.T, iotemu.Message)
	}{
		{name: "encoded topic", req: request{path: "/topics/sensors%2Fpi%2Ft", query: "qos=1", body: []byte(`{}`)},
			want: 200, wantTopic: "sensors/pi/t",
			check: func(t *testing.T, m iotemu.Message) {
				if m.QoS != 1 || m.RawPath != "/topics/sensors%2Fpi%2Ft" || m.ALPN != publisher.ALPNProtocol || m.Listener != iotemu.ListenerALPN {
					t.Errorf("message %+v", m)
				}
			}},
		{name: "raw slashes accepted", req: request{path: "/topics/sensors/pi/t"}, want: 200, wantTopic: "sensors/pi/t"},
		{name: "qos defaults to 0", req: request{path: "/topics/a"}, want: 200, wantTopic: "a",
			check: func(t *testing.T, m iotemu.Message) {
				if m.QoS != 0 {
					t.Errorf("qos %d, want 0", m.QoS)
				}
			}},
		{name: "plain listener without ALPN", listener: iotemu.ListenerPlain, req: request{path: "/topics/a", query: "qos=0"},
			want: 200, wantTopic: "a",
			check: func(t *testing.T, m iotemu.Message) {
				if m.ALPN != "" || m.Listener != iotemu.ListenerPlain {
					t.Errorf("message %+v", m)
				}
			}},
		{name: "plain listener with ALPN", listener: iotemu.ListenerPlain, alpn: true, req: request{path: "/topics/a"}, want: 200, wantTopic: "a"},
		{name: "ALPN listener without ALPN", listener: iotemu.ListenerALPN, alpn: false, req: request{path: "/topics/a"},
			want: 403, wantName: "ForbiddenException", wantMsg: "Missing Authentication Token"},
		{name: "GET", req: request{method: "GET", path: "/topics/a"}, want: 405, wantName: "MethodNotAllowedException"},
		{name: "PUT", req: request{method: "PUT", path: "/topics/a"}, want: 405, wantName: "MethodNotAllowedException"},
		{name: "unknown path", req: request{path: "/devices/pi/shadow"}, want: 404, wantName: "ResourceNotFoundException"},
		{name: "topics without slash", req: request{path: "/topics"}, want: 404, wantName: "ResourceNotFoundException"},
		{name: "empty topic", req: request{path: "/topics/"}, want: 400, wantName: "InvalidRequestException", wantMsg: "empty"},
		{name: "qos 2", req: request{path: "/topics/a", query: "qos=2"}, want: 400, wantName: "InvalidRequestException", wantMsg: "qos"},
		{name: "qos word", req: request{path: "/topics/a", query: "qos=one"}, want: 400, wantName: "InvalidRequestException", wantMsg: "qos"},
		{name: "qos twice", req: request{path: "/topics/a", query: "qos=0&qos=1"}, want: 400, wantName: "InvalidRequestException", wantMsg: "2 times"},
		{name: "wildcard topic", req: request{path: "/topics/a%2F%2B"}, want: 400, wantName: "InvalidRequestException", wantMsg: "wildcard"},
		{name: "hash topic", req: request{path: "/topics/a%2F%23"}, want: 400, wantName: "InvalidRequestException", wantMsg: "wildcard"},
		{name: "eight slashes", req: request{path: "/topics/" + publisher.EscapeTopic("a/b/c/d/e/f/g/h/i")}, want: 400, wantName: "InvalidRequestException", wantMsg: "8 slashes"},
		{name: "basic ingest", req: request{path: "/topics/" + publisher.EscapeTopic("$aws/rules/r_1/a/b/c/d/e/f/g/h")}, want: 200, wantTopic: "$aws/rules/r_1/a/b/c/d/e/f/g/h"},
		{name: "reserved topic", req: request{path: "/topics/" + publisher.EscapeTopic("$aws/things/x/shadow/update/accepted")}, want: 400, wantName: "InvalidRequestException", wantMsg: "reserved"},
		{name: "topic too long", req: request{path: "/topics/" + strings.Repeat("a", 257)}, want: 400, wantName: "InvalidRequestException", wantMsg: "257 bytes"},
		{name: "payload at the limit", req: request{path: "/topics/a", body: make([]byte, publisher.MaxPayload)}, want: 200, wantTopic: "a"},
		{name: "payload over the limit", req: request{path: "/topics/a", body: make([]byte, publisher.MaxPayload+1)},
			want: 413, wantName: "RequestEntityTooLargeException", wantMsg: "131073"},
		{name: "payload far over the limit", req: request{path: "/topics/a", body: make([]byte, 4<<20)},
			want: 413, wantName: "RequestEntityTooLargeException", wantMsg: "4194304"},
		{name: "chunked body", req: request{path: "/topics/a", body: []byte("{}"), chunked: true}, want: 411, wantName: "LengthRequiredException"},
		{name: "retain", req: request{path: "/topics/a", query: "retain=true"}, want: 200, wantTopic: "a",
			check: func(t *testing.T, m iotemu.Message) {
				if !m.Retain {
					t.Error("retain not recorded")
				}
			}},
		{name: "bad retain", req: request{path: "/topics/a", query: "retain=yes"}, want: 400, wantName: "InvalidRequestException", wantMsg: "retain"},
		{name: "message expiry", req: request{path: "/topics/a", query: "messageExpiry=60&contentType=text%2Fplain&responseTopic=r%2Fx"}, want: 200, wantTopic: "a",
			check: func(t *testing.T, m iotemu.Message) {
				if m.MessageExpiry.Seconds() != 60 || m.ContentType != "text/plain" || m.ResponseTopic != "r/x" {
					t.Errorf("message %+v", m)
				}
			}},
		{name: "negative expiry", req: request{path: "/topics/a", query: "messageExpiry=-1"}, want: 400, wantName: "InvalidRequestException", wantMsg: "messageExpiry"},
		{name: "wildcard response topic", req: request{path: "/topics/a", query: "responseTopic=r%2F%23"}, want: 400, wantName: "InvalidRequestException", wantMsg: "responseTopic"},
		{name: "mqtt5 headers", req: request{path: "/topics/a", body: []byte("héllo"), header: map[string]string{
			"x-amz-mqtt5-user-properties":          b64(`[{"a":"1"},{"b":"2"}]`),
			"x-amz-mqtt5-payload-format-indicator": "UTF8_DATA",
			"x-amz-mqtt5-correlation-data":         b64("corr"),
		}}, want: 200, wantTopic: "a",
			check: func(t *testing.T, m iotemu.Message) {
				if len(m.UserProperties) != 2 || m.UserProperties[1]["b"] != "2" || m.PayloadFormat != "UTF8_DATA" || string(m.CorrelationData) != "corr" {
					t.Errorf("message %+v", m)
				}
			}},
		{name: "user properties not base64", req: request{path: "/topics/a", header: map[string]string{"x-amz-mqtt5-user-properties": "{{"}},
			want: 400, wantName: "InvalidRequestException", wantMsg: "user-properties"},
		{name: "user property with two keys", req: request{path: "/topics/a", header: map[string]string{"x-amz-mqtt5-user-properties": b64(`[{"a":"1","b":"2"}]`)}},
			want: 400, wantName: "InvalidRequestException", wantMsg: "2 keys"},
		{name: "bad payload format", req: request{path: "/topics/a", header: map[string]string{"x-amz-mqtt5-payload-format-indicator": "TEXT"}},
			want: 400, wantName: "InvalidRequestException", wantMsg: "payload-format"},
		{name: "UTF8_DATA with binary payload", req: request{path: "/topics/a", body: []byte{0xff}, header: map[string]string{"x-amz-mqtt5-payload-format-indicator": "UTF8_DATA"}},
			want: 400, wantName: "InvalidRequestException", wantMsg: "UTF-8"},
		{name: "bad correlation data", req: request{path: "/topics/a", header: map[string]string{"x-amz-mqtt5-correlation-data": "%%"}},
			want: 400, wantName: "InvalidRequestException", wantMsg: "correlation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.listener == "" {
				tt.listener, tt.alpn = iotemu.ListenerALPN, true
			}
			addr, client := s.ALPNAddr(), plainClient
			if tt.listener == iotemu.ListenerPlain {
				addr = s.PlainAddr()
			}
			if tt.alpn {
				client = alpnClient
			}
			before := len(s.Messages())
			resp, err := do(t, t.Context(), client, addr, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.status != tt.want {
				t.Fatalf("status %d (%s), want %d", resp.status, resp.message, tt.want)
			}
			if resp.traceID == "" || resp.requestID != resp.traceID {
				t.Errorf("traceId %q, x-amzn-RequestId %q: want equal and set", resp.traceID, resp.requestID)
			}
			msgs := s.Messages()
			if tt.want != 200 {
				if resp.errorType != tt.wantName+":" {
					t.Errorf("x-amzn-ErrorType %q, want %q", resp.errorType, tt.wantName+":")
				}
				if !strings.Contains(resp.message, tt.wantMsg) {
					t.Errorf("message %q does not contain %q", resp.message, tt.wantMsg)
				}
				if tt.want == 405 && resp.allow != "POST" {
					t.Errorf("Allow %q, want POST", resp.allow)
				}
				if len(msgs) != before {
					t.Errorf("refused request was recorded")
				}
				return
			}
			if resp.message != "OK" || resp.errorType != "" || resp.conn != "keep-alive" {
				t.Errorf("reply %+v, want message OK, no error type, keep-alive", resp)
			}
			if len(msgs) != before+1 {
				t.Fatalf("%d new messages, want 1", len(msgs)-before)
			}
			m := msgs[len(msgs)-1]
			if m.Topic != tt.wantTopic || m.RequestID != resp.requestID || !bytes.Equal(m.Payload, tt.req.body) || m.ClientCN != "emulated-device" {
				t.Errorf("message topic %q id %q cn %q, want %q %q emulated-device", m.Topic, m.RequestID, m.ClientCN, tt.wantTopic, resp.requestID)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestFailNext(t *testing.T) {
	tests := []struct {
		status   int
		wantName string
	}{
		{400, "InvalidRequestException"},
		{401, "UnauthorizedException"},
		{403, "ForbiddenException"},
		{405, "MethodNotAllowedException"},
		{413, "RequestEntityTooLargeException"},
		{429, "ThrottlingException"},
		{500, "InternalFailureException"},
		{502, "BadGatewayException"},
		{503, "ServiceUnavailableException"},
		{504, "GatewayTimeoutException"},
		{418, "I'mateapotException"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			s := start(t, iotemu.Options{})
			c := rawClient(t, s.PKI().ClientTLSConfig(true))
			s.FailNext(tt.status, 2)
			for i, want := range []int{tt.status, tt.status, 200} {
				resp, err := do(t, t.Context(), c, s.ALPNAddr(), request{path: "/topics/a", body: []byte("{}")})
				if err != nil {
					t.Fatal(err)
				}
				if resp.status != want {
					t.Fatalf("request %d: status %d, want %d", i, resp.status, want)
				}
				if want != 200 && resp.errorType != tt.wantName+":" {
					t.Errorf("x-amzn-ErrorType %q, want %q", resp.errorType, tt.wantName+":")
				}
			}
			if n := len(s.Messages()); n != 1 {
				t.Errorf("%d messages, want 1", n)
			}
		})
	}
}

func TestFailNextPanicsOnSuccessStatus(t *testing.T) {
	s := start(t, iotemu.Options{})
	defer func() {
		if recover() == nil {
			t.Error("FailNext(200, 1) did not panic")
		}
	}()
	s.FailNext(200, 1)
}

func TestRecord(t *testing.T) {
	var rec bytes.Buffer
	s := start(t, iotemu.Options{Record: &rec})
	c := rawClient(t, s.PKI().ClientTLSConfig(true))
	payloads := []struct {
		body, want string
	}{
		{"{\n  \"t\": 21.5,\n  \"ok\": true\n}\n", `{"t":21.5,"ok":true}`},
		{"[1, 2]", `[1,2]`},
		{"\x00\x01binary", `"` + base64.StdEncoding.EncodeToString([]byte("\x00\x01binary")) + `"`},
		{"not json", `"` + base64.StdEncoding.EncodeToString([]byte("not json")) + `"`},
		{"", `""`},
	}
	for _, p := range payloads {
		if _, err := do(t, t.Context(), c, s.ALPNAddr(), request{path: "/topics/s%2Fx", query: "qos=1", body: []byte(p.body)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close() // all writes done
	lines := strings.Split(strings.TrimSuffix(rec.String(), "\n"), "\n")
	if len(lines) != len(payloads) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(payloads), rec.String())
	}
	msgs := s.Messages()
	for i, line := range lines {
		var got map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		if len(got) != 5 {
			t.Errorf("line %d has fields %v, want time, topic, qos, request_id, payload", i, got)
		}
		want := map[string]string{
			"topic":      `"s/x"`,
			"qos":        `1`,
			"request_id": `"` + msgs[i].RequestID + `"`,
			"payload":    payloads[i].want,
		}
		for k, v := range want {
			if string(got[k]) != v {
				t.Errorf("line %d: %s = %s, want %s", i, k, got[k], v)
			}
		}
		var ts string
		if err := json.Unmarshal(got["time"], &ts); err != nil || ts == "" {
			t.Errorf("line %d: time %s", i, got["time"])
		}
	}
}

func TestLoseReplies(t *testing.T) {
	s := start(t, iotemu.Options{})
	c := rawClient(t, s.PKI().ClientTLSConfig(true))
	s.LoseReplies(1)
	if _, err := do(t, t.Context(), c, s.ALPNAddr(), request{path: "/topics/a", body: []byte(`{"n":1}`)}); err == nil {
		t.Fatal("lost reply arrived")
	}
	resp, err := do(t, t.Context(), c, s.ALPNAddr(), request{path: "/topics/a", body: []byte(`{"n":1}`)})
	if err != nil || resp.status != 200 {
		t.Fatalf("second request: %+v, %v", resp, err)
	}
	if n := len(s.Messages()); n != 2 {
		t.Errorf("%d messages, want 2 (the lost reply's message is kept)", n)
	}
}

func TestDelayHonoursClientGoingAway(t *testing.T) {
	s := start(t, iotemu.Options{})
	c := rawClient(t, s.PKI().ClientTLSConfig(true))
	s.SetDelay(1 << 62)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		// Cancel once the message is in, i.e. while the reply is delayed.
		if _, err := s.Wait(ctx, 1); err == nil {
			cancel()
		}
	}()
	resp, err := do(t, ctx, c, s.ALPNAddr(), request{path: "/topics/a", body: []byte("{}")})
	if err == nil {
		t.Fatalf("got a reply %+v to a request whose client went away", resp)
	}
	s.Close() // must not wait for the delay
}

func TestSetDown(t *testing.T) {
	s := start(t, iotemu.Options{})
	c := rawClient(t, s.PKI().ClientTLSConfig(true))
	post := func() error {
		_, err := do(t, t.Context(), c, s.ALPNAddr(), request{path: "/topics/a", body: []byte("{}")})
		return err
	}
	if err := post(); err != nil {
		t.Fatal(err)
	}
	addrs := []string{s.ALPNAddr(), s.PlainAddr()}
	if err := s.SetDown(true); err != nil {
		t.Fatal(err)
	}
	for _, addr := range addrs {
		if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s while down: %v, want connection refused", addr, err)
		}
	}
	if err := post(); err == nil {
		t.Error("request succeeded while down")
	}
	if err := s.SetDown(false); err != nil {
		t.Fatal(err)
	}
	if s.ALPNAddr() != addrs[0] || s.PlainAddr() != addrs[1] {
		t.Errorf("addresses changed to %s, %s", s.ALPNAddr(), s.PlainAddr())
	}
	if err := post(); err != nil {
		t.Fatalf("after coming back: %v", err)
	}
}

func TestRates(t *testing.T) {
	run := func(seed int64, r iotemu.Rates) (statuses []int, messages int) {
		s := start(t, iotemu.Options{Seed: seed, Rates: r})
		c := rawClient(t, s.PKI().ClientTLSConfig(true))
		for range 30 {
			resp, err := do(t, t.Context(), c, s.ALPNAddr(), request{path: "/topics/a", body: []byte("{}")})
			if err != nil {
				statuses = append(statuses, 0) // lost
				continue
			}
			statuses = append(statuses, resp.status)
		}
		return statuses, len(s.Messages())
	}
	rates := iotemu.Rates{Status: map[int]float64{429: 0.2, 503: 0.2}, Lose: 0.2}
	a, _ := run(7, rates)
	b, _ := run(7, rates)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different faults:\n%v\n%v", a, b)
	}
	seen := map[int]bool{}
	for _, st := range a {
		seen[st] = true
	}
	for _, st := range []int{0, 200, 429, 503} {
		if !seen[st] {
			t.Errorf("seed 7 never produced %d in %v", st, a)
		}
	}
	all, n := run(1, iotemu.Rates{Lose: 1})
	for _, st := range all {
		if st != 0 {
			t.Fatalf("Lose: 1 let a reply through: %v", all)
		}
	}
	if n != 30 {
		t.Errorf("%d messages with every reply lost, want 30", n)
	}
}

func TestSetRatesErrors(t *testing.T) {
	s := start(t, iotemu.Options{})
	tests := []struct {
		name string
		r    iotemu.Rates
		want string
	}{
		{"success status", iotemu.Rates{Status: map[int]float64{200: 0.1}}, "not an error status"},
		{"negative", iotemu.Rates{Status: map[int]float64{500: -0.1}}, "out of [0, 1]"},
		{"sum over one", iotemu.Rates{Status: map[int]float64{500: 0.6, 503: 0.6}}, "sum"},
		{"lose over one", iotemu.Rates{Lose: 1.5}, "lose"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SetRates(tt.r)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SetRates error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestWait(t *testing.T) {
	s := start(t, iotemu.Options{})
	c := rawClient(t, s.PKI().ClientTLSConfig(true))
	got := make(chan []iotemu.Message, 1)
	go func() {
		msgs, err := s.Wait(t.Context(), 3)
		if err != nil {
			t.Error(err)
		}
		got <- msgs
	}()
	for i := range 3 {
		if _, err := do(t, t.Context(), c, s.ALPNAddr(), request{path: "/topics/a", body: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if msgs := <-got; len(msgs) != 3 || string(msgs[2].Payload) != "2" {
		t.Errorf("Wait returned %d messages", len(msgs))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Wait(ctx, 4); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context: %v", err)
	}
}

func TestHandshakesAndIdleClose(t *testing.T) {
	s := start(t, iotemu.Options{})
	c := rawClient(t, s.PKI().ClientTLSConfig(true))
	for range 5 {
		if _, err := do(t, t.Context(), c, s.ALPNAddr(), request{path: "/topics/a"}); err != nil {
			t.Fatal(err)
		}
	}
	if h, n := s.Handshakes(), s.Connections(); h != 1 || n != 1 {
		t.Fatalf("%d handshakes, %d connections, want 1 and 1", h, n)
	}
	s.CloseIdle()
	if _, err := do(t, t.Context(), c, s.ALPNAddr(), request{path: "/topics/a"}); err != nil {
		// net/http resends on its own only idempotent requests; the
		// publisher handles this case (see its tests).
		if _, err := do(t, t.Context(), c, s.ALPNAddr(), request{path: "/topics/a"}); err != nil {
			t.Fatal(err)
		}
	}
	if h := s.Handshakes(); h != 2 {
		t.Errorf("%d handshakes after CloseIdle, want 2", h)
	}
	hellos := s.ClientHellos()
	if len(hellos) != 2 || hellos[0].ServerName != "localhost" || fmt.Sprint(hellos[0].ALPN) != "[x-amzn-http-ca]" {
		t.Errorf("hellos %+v", hellos)
	}
}

func TestUntrustedClientRefused(t *testing.T) {
	s := start(t, iotemu.Options{})
	certFile, keyFile, err := iotemu.NewUntrustedClient(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		addr     string
		alpn     bool
		want403  bool
		failures int
	}{
		{"8443-style", s.PlainAddr(), false, false, 1},
		{"443-style with ALPN", s.ALPNAddr(), true, false, 2},
		// Without ALPN on 443 no certificate is asked for: AWS answers 403.
		{"443-style without ALPN", s.ALPNAddr(), false, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := s.PKI().ClientTLSConfig(tt.alpn)
			cfg.Certificates = []tls.Certificate{pair}
			resp, err := do(t, t.Context(), rawClient(t, cfg), tt.addr, request{path: "/topics/a"})
			switch {
			case tt.want403 && (err != nil || resp.status != 403):
				t.Errorf("got %+v, %v; want 403", resp, err)
			case !tt.want403 && err == nil:
				t.Errorf("untrusted client got %+v", resp)
			}
			if n := s.HandshakeFailures(); n != tt.failures {
				t.Errorf("%d handshake failures, want %d", n, tt.failures)
			}
		})
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages from untrusted clients", n)
	}
}

func TestHTTP10(t *testing.T) {
	s := start(t, iotemu.Options{})
	conn, err := tls.Dial("tcp", s.PlainAddr(), s.PKI().ClientTLSConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST /topics/a%2Fb?qos=1 HTTP/1.0\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("HTTP/1.0 publish: status %d", resp.StatusCode)
	}
	if m := s.Messages(); len(m) != 1 || m[0].Topic != "a/b" {
		t.Errorf("messages %+v", m)
	}
}

func TestListenerOptions(t *testing.T) {
	s := start(t, iotemu.Options{PlainAddr: iotemu.Off})
	if s.PlainAddr() != "" || s.ALPNAddr() == "" {
		t.Errorf("addresses %q %q, want only the ALPN one", s.ALPNAddr(), s.PlainAddr())
	}
	if _, err := iotemu.Start(iotemu.Options{ALPNAddr: iotemu.Off, PlainAddr: iotemu.Off}); err == nil {
		t.Error("Start with both listeners off succeeded")
	}
}

func TestPKI(t *testing.T) {
	dir := t.TempDir()
	p1, err := iotemu.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		perm os.FileMode
	}{
		{iotemu.CAFile, 0o644}, {iotemu.ServerCertFile, 0o644}, {iotemu.ServerKeyFile, 0o600},
		{iotemu.DeviceCertFile, 0o644}, {iotemu.DeviceKeyFile, 0o600},
	} {
		fi, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.perm {
			t.Errorf("%s has mode %v, want %v", f.name, fi.Mode().Perm(), f.perm)
		}
	}
	p2, err := iotemu.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !p1.CA.Equal(p2.CA) || !bytes.Equal(p1.Device.Certificate[0], p2.Device.Certificate[0]) {
		t.Error("second NewPKI did not load the same certificates")
	}
	if p2.Path(iotemu.DeviceKeyFile) != filepath.Join(dir, iotemu.DeviceKeyFile) {
		t.Errorf("Path = %q", p2.Path(iotemu.DeviceKeyFile))
	}
	if err := os.Remove(filepath.Join(dir, iotemu.ServerKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := iotemu.NewPKI(dir); err == nil || !strings.Contains(err.Error(), "lacks server.key") {
		t.Errorf("NewPKI with a missing file: %v", err)
	}
	mem, err := iotemu.NewPKI("")
	if err != nil {
		t.Fatal(err)
	}
	if mem.Path(iotemu.CAFile) != "" {
		t.Error("in-memory PKI has paths")
	}
	// The PKI files work with a server started from the same directory.
	s := start(t, iotemu.Options{PKI: p1})
	if _, err := do(t, t.Context(), rawClient(t, p2.ClientTLSConfig(false)), s.PlainAddr(), request{path: "/topics/a"}); err != nil {
		t.Fatal(err)
	}
}
