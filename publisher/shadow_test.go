package publisher_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
	"github.com/sensor-agent/sensor-agent/publisher/proxytest"
)

// shadowVersion is the version of a shadow document.
func shadowVersion(t *testing.T, body []byte) int64 {
	t.Helper()
	var v struct{ Version int64 }
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("shadow answer %s: %v", body, err)
	}
	return v.Version
}

// shadowStep is one shadow request and what must come of it.
type shadowStep struct {
	name, method, thing, shadow, body string
	wantStatus                        int    // 2xx, or the *ShadowError's
	wantType                          string // the *ShadowError's
	wantVersion                       int64  // of a 2xx answer's document
	wantErr                           []string
}

// runShadowSteps plays steps in order on c.
func runShadowSteps(t *testing.T, c *publisher.Client, steps []shadowStep) {
	t.Helper()
	for _, st := range steps {
		var body []byte
		if st.body != "" {
			body = []byte(st.body)
		}
		reply, err := c.Shadow(t.Context(), st.method, st.thing, st.shadow, body)
		if st.wantType == "" {
			if err != nil || reply.Status != st.wantStatus || shadowVersion(t, reply.Body) != st.wantVersion {
				t.Fatalf("%s: %d %s, %v; want %d with version %d", st.name, reply.Status, reply.Body, err, st.wantStatus, st.wantVersion)
			}
			continue
		}
		se, ok := errors.AsType[*publisher.ShadowError](err)
		if !ok || se.Status != st.wantStatus || se.Type != st.wantType {
			t.Fatalf("%s: error %v (%T), want a *ShadowError %d %s", st.name, err, err, st.wantStatus, st.wantType)
		}
		for _, w := range st.wantErr {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", st.name, err, w)
			}
		}
	}
}

// documentedSteps get, update, conflict and delete one named shadow.
func documentedSteps(thing string) []shadowStep {
	return []shadowStep{
		{name: "get before any update", method: "GET", thing: thing, shadow: "sensor-agent", wantStatus: 404, wantType: "ResourceNotFoundException",
			wantErr: []string{"shadow get " + thing + "/sensor-agent: 404 ResourceNotFoundException: No shadow exists with name: 'sensor-agent'"}},
		{name: "update", method: "POST", thing: thing, shadow: "sensor-agent", body: `{"state":{"reported":{"interval":"5s"}}}`, wantStatus: 200, wantVersion: 1},
		{name: "update with the current version", method: "POST", thing: thing, shadow: "sensor-agent", body: `{"state":{"desired":{"interval":"10s"}},"version":1}`, wantStatus: 200, wantVersion: 2},
		{name: "stale version", method: "POST", thing: thing, shadow: "sensor-agent", body: `{"state":{"desired":{"interval":"1s"}},"version":1}`,
			wantStatus: 409, wantType: "ConflictException", wantErr: []string{"shadow update " + thing + "/sensor-agent: 409 ConflictException: Version conflict"}},
		{name: "get", method: "GET", thing: thing, shadow: "sensor-agent", wantStatus: 200, wantVersion: 2},
		{name: "classic shadow is another", method: "GET", thing: thing, wantStatus: 404, wantType: "ResourceNotFoundException",
			wantErr: []string{"shadow get " + thing + ": 404"}},
		{name: "malformed", method: "POST", thing: thing, shadow: "sensor-agent", body: `{"state":`, wantStatus: 400, wantType: "InvalidRequestException",
			wantErr: []string{"Invalid JSON"}},
		{name: "delete", method: "DELETE", thing: thing, shadow: "sensor-agent", wantStatus: 200, wantVersion: 2},
		{name: "get after delete", method: "GET", thing: thing, shadow: "sensor-agent", wantStatus: 404, wantType: "ResourceNotFoundException"},
	}
}

func TestShadowListeners(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	tests := []struct {
		name, listener, alpn, thing string
		wantOffer                   []string
	}{
		{"443-style with ALPN", iotemu.ListenerALPN, "on", "pi-443", []string{publisher.ALPNProtocol}},
		{"8443-style without ALPN", iotemu.ListenerPlain, "off", "pi-8443", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hellos := len(s.ClientHellos())
			c := newClient(t, clientConfig(t, s, tt.listener, tt.alpn))
			runShadowSteps(t, c, documentedSteps(tt.thing))
			h := s.ClientHellos()[hellos:]
			if len(h) != 1 || !equalStrings(h[0].ALPN, tt.wantOffer) || h[0].Listener != tt.listener {
				t.Errorf("handshakes %+v, want one on %s offering %q: the requests share one kept-alive connection", h, tt.listener, tt.wantOffer)
			}
		})
	}
	if n := s.ShadowRequests(); n != 2*len(documentedSteps("")) {
		t.Errorf("emulator counted %d shadow requests, want %d", n, 2*len(documentedSteps("")))
	}
}

func TestShadowThroughSquid(t *testing.T) {
	t.Parallel() // squid takes 2 s to shut down
	s := startEmu(t, iotemu.Options{})
	const user, pass = "alice", "p@ss:w0rd%"
	sq := proxytest.StartSquid(t, proxytest.SquidOptions{
		Users:      map[string]string{user: pass},
		AllowPorts: []int{portOf(t, s.ALPNAddr()), portOf(t, s.PlainAddr())},
	})
	proxy := "http://" + url.UserPassword(user, pass).String() + "@" + sq.Addr
	for _, listener := range []string{iotemu.ListenerALPN, iotemu.ListenerPlain} {
		alpn := map[string]string{iotemu.ListenerALPN: "on", iotemu.ListenerPlain: "off"}[listener]
		c, logs := newLoggedClient(t, viaProxy(t, s, listener, alpn, proxy))
		runShadowSteps(t, c, documentedSteps("pi-proxy-"+listener))
		noSecrets(t, secretsOf(user, pass), logs.String())
		if !strings.Contains(logs.String(), "connecting through proxy") {
			t.Errorf("%s: the proxy is not used:\n%s", listener, logs)
		}
	}
	// Wrong credentials: the proxy's refusal, as for a publish.
	c, _ := newLoggedClient(t, viaProxy(t, s, iotemu.ListenerALPN, "on", "http://alice:Wr0ng@"+sq.Addr))
	_, err := c.Shadow(t.Context(), "GET", "pi", "", nil)
	if pe, ok := errors.AsType[*publisher.ProxyError](err); !ok || pe.Reason != publisher.ProxyAuthRejected || !strings.HasPrefix(err.Error(), "shadow get pi: ") {
		t.Errorf("error %v, want a *ProxyError (credentials rejected) naming the shadow", err)
	}
}

func TestShadowFallback(t *testing.T) {
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e443 := startEmu(t, iotemu.Options{PKI: pki, PlainAddr: iotemu.Off})
	e8443 := startEmu(t, iotemu.Options{PKI: pki, ALPNAddr: iotemu.Off})
	cfg := clientConfig(t, e443, iotemu.ListenerALPN, "on")
	cfg.FallbackPort = portOf(t, e8443.PlainAddr())
	c := newClient(t, cfg)
	if err := e443.SetDown(true); err != nil {
		t.Fatal(err)
	}
	runShadowSteps(t, c, documentedSteps("pi"))
	if h := e8443.ClientHellos(); len(h) != 1 || h[0].ALPN != nil {
		t.Errorf("8443 handshakes %+v, want one without ALPN", h)
	}
	if n := e8443.ShadowRequests(); n != len(documentedSteps("")) {
		t.Errorf("the 8443 emulator counted %d shadow requests, want %d", n, len(documentedSteps("")))
	}
	if p := c.ActivePort(); p != cfg.FallbackPort {
		t.Errorf("active port %d, want the fallback %d", p, cfg.FallbackPort)
	}
}

func TestShadowErrors(t *testing.T) {
	s := startEmu(t, iotemu.Options{})
	c := newClient(t, clientConfig(t, s, iotemu.ListenerALPN, "on"))

	// 403 from AWS: the policy the request needs.
	s.FailNext(http.StatusForbidden, 2)
	_, err := c.Shadow(t.Context(), "POST", "pi-1", "sensor-agent", []byte(`{"state":{}}`))
	want := "shadow update pi-1/sensor-agent: 403 ForbiddenException: Forbidden; the policy attached to the certificate must allow iot:UpdateThingShadow on arn:aws:iot:<region>:<account-id>:thing/pi-1/sensor-agent"
	if se, ok := errors.AsType[*publisher.ShadowError](err); !ok || se.Status != 403 || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v, want a *ShadowError starting %q", err, want)
	}
	_, err = c.Shadow(t.Context(), "DELETE", "pi-1", "", nil)
	if err == nil || !strings.Contains(err.Error(), "iot:DeleteThingShadow on arn:aws:iot:<region>:<account-id>:thing/pi-1 (") {
		t.Errorf("error %v, want the delete action on the thing's ARN", err)
	}

	// An answer that is not AWS's: the publisher's error, not a *ShadowError.
	if err := s.SetMode(iotemu.Mode{Answer: iotemu.HTML, Title: "Guest Wi-Fi"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Shadow(t.Context(), "GET", "pi-1", "", nil)
	if _, isShadow := errors.AsType[*publisher.ShadowError](err); isShadow || publisher.KindOf(err) != publisher.Auth ||
		!strings.Contains(err.Error(), `shadow get pi-1: 200 OK: an HTML page (title "Guest Wi-Fi")`) {
		t.Errorf("error %v, want an Auth *Error saying an HTML page came back", err)
	}
	if err := s.SetMode(iotemu.Mode{Answer: iotemu.HTML, Status: 404}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Shadow(t.Context(), "GET", "pi-1", "", nil)
	if err == nil || !strings.Contains(err.Error(), "no AWS IoT Device Shadow API") {
		t.Errorf("error %v, want the advice for a 404 that is not AWS's", err)
	}
	if err := s.SetMode(iotemu.Mode{}); err != nil {
		t.Fatal(err)
	}

	// Refused before sending.
	for _, tt := range []struct{ method, thing, name, body, want string }{
		{"PUT", "pi", "", "", "method PUT"},
		{"GET", "pi.1", "", "", `invalid thing name "pi.1"`},
		{"GET", "pi", "a/b", "", `invalid shadow name "a/b"`},
		{"GET", "pi", "", "{}", "GET takes no body"},
	} {
		requests := s.Requests()
		_, err := c.Shadow(t.Context(), tt.method, tt.thing, tt.name, []byte(tt.body))
		if publisher.KindOf(err) != publisher.Permanent || !strings.Contains(err.Error(), tt.want) || s.Requests() != requests {
			t.Errorf("%s %s %s: %v, want a Permanent error with %q and no request", tt.method, tt.thing, tt.name, err, tt.want)
		}
	}
}
