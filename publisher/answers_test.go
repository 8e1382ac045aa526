package publisher_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// trap is a server that fails the test if anything contacts it: where
// redirects point.
func trap(t *testing.T) (url string, hits *atomic.Int32) {
	hits = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		t.Errorf("the redirect was followed: %s %s reached the Location target", r.Method, r.URL)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/topics/sensors%2Fpi%2Fx", hits
}

// TestPublishNotAWSAnswers runs Client.Publish against the emulator's
// answer modes: what is not AWS's answer is never Permanent (the agent
// would dead-letter every message), says what answered, and a redirect is
// never followed.
func TestPublishNotAWSAnswers(t *testing.T) {
	const dataATS = "use the iot:Data-ATS endpoint from aws iot describe-endpoint"
	redirect := func(status int) iotemu.Mode { return iotemu.Mode{Answer: iotemu.Redirect, Status: status} }
	page := func(status int) iotemu.Mode { return iotemu.Mode{Answer: iotemu.HTML, Status: status} }
	tests := []struct {
		name      string
		mode      iotemu.Mode
		wantKind  publisher.Kind
		words     []string
		swallowed int // messages the emulator's 2xx page took
	}{
		{"300", redirect(300), publisher.Auth, []string{"300 Multiple Choices to http://", "the endpoint redirects, which AWS IoT never does", dataATS, "not followed"}, 0},
		{"301", redirect(301), publisher.Auth, []string{"301 Moved Permanently to http://", "redirects", dataATS}, 0},
		{"302", redirect(302), publisher.Auth, []string{"302 Found to http://", "redirects"}, 0},
		{"303", redirect(303), publisher.Auth, []string{"303 See Other to http://", "redirects"}, 0},
		{"304", redirect(304), publisher.Auth, []string{"304 Not Modified to http://", "redirects"}, 0},
		{"307", redirect(307), publisher.Auth, []string{"307 Temporary Redirect to http://", "redirects"}, 0},
		{"308", redirect(308), publisher.Auth, []string{"308 Permanent Redirect to http://", "redirects"}, 0},
		{"404 page", page(404), publisher.Auth, []string{`404 Not Found: an HTML page (title "404 Not Found") instead of AWS's JSON`, "no AWS IoT publish path", dataATS}, 0},
		{"405 page", page(405), publisher.Auth, []string{"405 Method Not Allowed: an HTML page", "does not take POST", dataATS}, 0},
		{"400 page", page(400), publisher.Auth, []string{`400 Bad Request: an HTML page (title "400 Bad Request")`, "not an answer of AWS IoT", dataATS}, 0},
		{"403 page", page(403), publisher.Auth, []string{`403 Forbidden: an HTML page (title "403 Forbidden")`, "not an answer of AWS IoT"}, 0},
		{"410 page", page(410), publisher.Auth, []string{"410 Gone: an HTML page", "not an answer of AWS IoT"}, 0},
		{"202 page: not taken as delivered", page(202), publisher.Auth, []string{"202 Accepted: an HTML page", "not taken as delivered"}, 1},
		{"204: not taken as delivered", page(204), publisher.Auth, []string{"204 No Content: an empty body", "not taken as delivered"}, 1},
		{"503 page: transient", page(503), publisher.Retry, []string{`503 Service Unavailable: an HTML page (title "503 Service Unavailable") instead of AWS's JSON`}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startEmu(t, iotemu.Options{})
			loc, hits := trap(t)
			tt.mode.Location = loc
			if err := s.SetMode(tt.mode); err != nil {
				t.Fatal(err)
			}
			c := newClient(t, clientConfig(t, s, iotemu.ListenerALPN, "on"))
			_, err := c.Publish(t.Context(), "sensors/pi/x", []byte(`{"v":1}`))
			if err == nil {
				t.Fatal("publish succeeded")
			}
			checkKind(t, err, tt.wantKind)
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q\nlacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "<") {
				t.Errorf("%q quotes the page's markup", err)
			}
			// One request per publish: nothing followed, nothing resent.
			if n := s.Requests(); n != 1 {
				t.Errorf("the emulator saw %d requests for one publish, want 1", n)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("the Location target was contacted %d times", n)
			}
			if n, sw := len(s.Messages()), len(s.Swallowed()); n != 0 || sw != tt.swallowed {
				t.Errorf("%d messages accepted and %d swallowed, want 0 and %d", n, sw, tt.swallowed)
			}
			// The data is not lost: once the endpoint answers as AWS does,
			// the same client publishes.
			if err := s.SetMode(iotemu.Mode{}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Publish(t.Context(), "sensors/pi/x", []byte(`{"v":1}`)); err != nil {
				t.Fatalf("back to normal: %v", err)
			}
		})
	}
}

// A 200 that is not AWS's (a captive portal's page) is taken as delivered,
// and said once per Client, not on every publish.
func TestPublishCaptivePortal200WarnsOnce(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	if err := s.SetMode(iotemu.Mode{Answer: iotemu.HTML, Title: "Hotel Wi-Fi"}); err != nil {
		t.Fatal(err)
	}
	c, logs := newLoggedClient(t, clientConfig(t, s, iotemu.ListenerALPN, "on"))
	for i := range 3 {
		res, err := c.Publish(t.Context(), "sensors/pi/x", fmt.Appendf(nil, `{"i":%d}`, i))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if want := `200 OK with an HTML page (title "Hotel Wi-Fi") instead of AWS's JSON`; res.Status != 200 || res.Warning != want {
			t.Errorf("publish %d: %+v, want status 200 and warning %q", i, res, want)
		}
	}
	warns := regexpLines(logs.String(), "level=WARN", "answer that is not AWS IoT's")
	if len(warns) != 1 {
		t.Fatalf("%d warnings for 3 publishes answered by a captive portal, want 1:\n%s", len(warns), logs)
	}
	for _, w := range []string{"taken as delivered", "messages are being lost", "endpoint=" + c.Endpoint(), `Hotel Wi-Fi`} {
		if !strings.Contains(warns[0], w) {
			t.Errorf("warning lacks %q: %s", w, warns[0])
		}
	}
	if n, sw := len(s.Messages()), len(s.Swallowed()); n != 0 || sw != 3 {
		t.Errorf("%d accepted, %d swallowed; want 0 and 3", n, sw)
	}
	// AWS's own 200 says nothing.
	if err := s.SetMode(iotemu.Mode{}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Publish(t.Context(), "sensors/pi/x", []byte("{}"))
	if err != nil || res.Warning != "" {
		t.Errorf("AWS's 200: %+v, %v; want no warning", res, err)
	}
}

// regexpLines returns the lines of s that contain all of words.
func regexpLines(s string, words ...string) []string {
	var out []string
	for l := range strings.Lines(s) {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// An offered x-amzn-http-ca that the server does not select is warned
// about once, not for each connection; the emulator's 8443-style listener
// never selects it.
func TestALPNNotNegotiatedWarnsOnce(t *testing.T) {
	tests := []struct {
		name      string
		listener  string
		alpn      string
		wantWarns int
	}{
		{"offered, not selected", iotemu.ListenerPlain, "on", 1},
		{"offered and selected", iotemu.ListenerALPN, "on", 0},
		{"not offered", iotemu.ListenerPlain, "off", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startEmu(t, iotemu.Options{})
			c, logs := newLoggedClient(t, clientConfig(t, s, tt.listener, tt.alpn))
			for i := range 3 {
				if _, err := c.Publish(t.Context(), "sensors/pi/x", []byte("{}")); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
				s.CloseIdle() // a new connection, a new handshake, each time
			}
			if h := s.Handshakes(); h != 3 {
				t.Fatalf("%d handshakes, want 3", h)
			}
			warns := regexpLines(logs.String(), "level=WARN", "ALPN")
			if len(warns) != tt.wantWarns {
				t.Fatalf("%d ALPN warnings over 3 connections, want %d:\n%s", len(warns), tt.wantWarns, logs)
			}
			if tt.wantWarns == 0 {
				return
			}
			for _, w := range []string{publisher.ALPNProtocol + " was offered but the server did not select it", "403 Missing Authentication Token",
				"a proxy or load balancer terminating TLS", "TLS-inspecting middlebox", "not AWS IoT", "endpoint=" + c.Endpoint(), "server_cert_issuer="} {
				if !strings.Contains(warns[0], w) {
					t.Errorf("warning lacks %q: %s", w, warns[0])
				}
			}
		})
	}
}

// A stalled endpoint is a transient failure: the client gives up at its
// timeout, and the emulator saw one request.
func TestPublishStalled(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	if err := s.SetMode(iotemu.Mode{Answer: iotemu.Stall}); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(t, s, iotemu.ListenerALPN, "on")
	cfg.Timeout = 200 * time.Millisecond
	c := newClient(t, cfg)
	_, err := c.Publish(t.Context(), "sensors/pi/x", []byte("{}"))
	checkErr(t, err, "no reply from")
	checkKind(t, err, publisher.Retry)
	if n := s.Requests(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if err := s.SetMode(iotemu.Mode{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(t.Context(), "sensors/pi/x", []byte("{}")); err != nil {
		t.Fatalf("after the stall: %v", err)
	}
}
