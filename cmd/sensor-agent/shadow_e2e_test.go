package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
	"github.com/sensor-agent/sensor-agent/publisher/proxytest"
)

// shadowState decodes a shadow document's state.
func shadowState(t *testing.T, doc []byte) (state map[string]any, version int64) {
	t.Helper()
	var v struct {
		State   map[string]any
		Version int64
	}
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("shadow document %s: %v", doc, err)
	}
	return v.State, v.Version
}

func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

// editConfig adds lines after the endpoint's "timeout: 5s" line.
func editConfig(t *testing.T, path, endpointLines string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(data), "  timeout: 5s\n", "  timeout: 5s\n"+endpointLines, 1)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestShadowCommand plays get, desire (JSON and YAML), get with a delta
// and delete with the real binary against the emulator.
func TestShadowCommand(t *testing.T) {
	t.Parallel()
	srv, pki := startEmulator(t, iotemu.Options{})
	cfg := agentConfig{device: "pi-e2e", addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
		maxReadings: 7, flushInterval: "1s", sensors: twoSimSensors}.write(t)
	report := func() {
		if _, err := srv.UpdateShadow("pi-e2e", "sensor-agent", []byte(`{"state":{"reported":{"sensors":{"air":{"interval":"20ms"}}}}}`)); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name         string
		args         []string // after shadow SUB -config CFG
		stdin        string
		before       func()
		wantCode     int
		wantOut      []string
		wantErr      []string
		wantDesired  string // the emulator's desired state afterwards ("": not checked)
		wantRequests int    // shadow requests made by the step
	}{
		{name: "get before any", args: []string{"get"}, wantCode: exitFailure, wantRequests: 1,
			wantErr: []string{"sensor-agent shadow: no shadow sensor-agent of thing pi-e2e: nothing was reported or desired yet", "404 ResourceNotFoundException"}},
		{name: "desire JSON", args: []string{"desire", `{"sensors":{"air":{"interval":"5s"}}}`}, wantRequests: 1,
			wantOut:     []string{"{\n  \"state\": {\n    \"desired\": {", `"version": 1`},
			wantDesired: `{"sensors":{"air":{"interval":"5s"}}}`},
		{name: "desire YAML on stdin", args: []string{"desire", "-"}, stdin: "publish:\n  flush_interval: 10s\nsensors:\n  door:\n    enabled: false\n", wantRequests: 1,
			wantOut:     []string{`"version": 2`, `"flush_interval": "10s"`},
			wantDesired: `{"sensors":{"air":{"interval":"5s"},"door":{"enabled":false}},"publish":{"flush_interval":"10s"}}`},
		{name: "get shows the delta", args: []string{"get"}, before: report, wantRequests: 1,
			wantOut: []string{`"delta": {`, `"reported": {`, `"version": 3`, `"timestamp": `}},
		{name: "null deletes a desired key", args: []string{"desire", `{"sensors":{"door":null}}`}, wantRequests: 1,
			wantDesired: `{"sensors":{"air":{"interval":"5s"}},"publish":{"flush_interval":"10s"}}`},
		{name: "not an object", args: []string{"desire", `[1,2]`}, wantCode: exitFailure,
			wantErr: []string{"desired state must be a JSON object"}},
		{name: "empty", args: []string{"desire", ` `}, wantCode: exitFailure, wantErr: []string{"desired state is empty"}},
		{name: "neither JSON nor YAML", args: []string{"desire", "a: [b"}, wantCode: exitFailure, wantErr: []string{"neither JSON nor YAML"}},
		{name: "desire without a fragment", args: []string{"desire"}, wantCode: exitUsage, wantErr: []string{"usage: sensor-agent shadow"}},
		{name: "get takes no argument", args: []string{"get", "x"}, wantCode: exitUsage, wantErr: []string{"usage: sensor-agent shadow"}},
		{name: "classic shadow of another thing", args: []string{"get", "-name", "", "-thing", "other"}, wantCode: exitFailure, wantRequests: 1,
			wantErr: []string{"no classic shadow of thing other"}},
		{name: "delete", args: []string{"delete"}, wantRequests: 1,
			wantOut: []string{"deleted the shadow sensor-agent of thing pi-e2e (it was at version 4)\n"}},
		{name: "get after delete", args: []string{"get"}, wantCode: exitFailure, wantRequests: 1, wantErr: []string{"no shadow sensor-agent of thing pi-e2e"}},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		before := srv.ShadowRequests()
		args := append([]string{"shadow", st.args[0], "-config", cfg}, st.args[1:]...)
		r := sensorAgent(t, testContext(t), strings.NewReader(st.stdin), args...)
		checkOutput(t, args, r)
		if r.code != st.wantCode {
			t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", st.name, r.code, st.wantCode, r.stdout, r.stderr)
		}
		for _, w := range st.wantOut {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: stdout does not contain %q:\n%s", st.name, w, r.stdout)
			}
		}
		for _, w := range st.wantErr {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr does not contain %q:\n%s", st.name, w, r.stderr)
			}
		}
		if n := srv.ShadowRequests() - before; n != st.wantRequests {
			t.Errorf("%s: %d shadow requests, want %d", st.name, n, st.wantRequests)
		}
		if st.wantDesired != "" {
			doc, _ := srv.Shadow("pi-e2e", "sensor-agent")
			state, _ := shadowState(t, doc)
			if want := jsonValue(t, st.wantDesired); !reflect.DeepEqual(state["desired"], want) {
				t.Errorf("%s: desired %v, want %v", st.name, state["desired"], want)
			}
		}
	}
	if _, ok := srv.Shadow("pi-e2e", "sensor-agent"); ok {
		t.Error("the shadow still exists after delete")
	}
}

// shadowRoute is a way to the endpoint for the shadow's e2e tests; each
// test makes two emulators sharing a PKI, a "443" and an "8443".
type shadowRoute struct {
	name     string
	endpoint func(t *testing.T, e443, e8443 *iotemu.Server) string // endpoint lines to add
	on8443   bool                                                  // where the requests must arrive
}

var shadowRoutes = []shadowRoute{
	{"direct", func(*testing.T, *iotemu.Server, *iotemu.Server) string { return "" }, false},
	{"squid with Basic auth", func(t *testing.T, e443, _ *iotemu.Server) string {
		sq := proxytest.StartSquid(t, proxytest.SquidOptions{
			Users:      map[string]string{"pi": "s3cr:et"},
			AllowPorts: []int{portNumber(t, e443.ALPNAddr())},
		})
		return "  proxy: http://" + url.UserPassword("pi", "s3cr:et").String() + "@" + sq.Addr + "\n"
	}, false},
	{"8443 fallback", func(t *testing.T, e443, e8443 *iotemu.Server) string {
		if err := e443.SetDown(true); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("  fallback_port: %d\n", portNumber(t, e8443.PlainAddr()))
	}, true},
}

// TestShadowCommandRoutes: through squid with Basic authentication, and on
// the 8443-style fallback port when the 443-style one is down. Two
// emulators share a PKI: one is "443", the other "8443".
func TestShadowCommandRoutes(t *testing.T) {
	t.Parallel()
	for _, tt := range shadowRoutes[1:] {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e443, pki := startEmulator(t, iotemu.Options{PlainAddr: iotemu.Off})
			e8443, err := iotemu.Start(iotemu.Options{PKI: pki, ALPNAddr: iotemu.Off})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(e8443.Close)
			cfg := agentConfig{device: "pi-e2e", addr: e443.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
				maxReadings: 7, flushInterval: "1s", sensors: twoSimSensors}.write(t)
			editConfig(t, cfg, tt.endpoint(t, e443, e8443))
			for _, args := range [][]string{
				{"shadow", "desire", "-config", cfg, `{"interval":"5s"}`},
				{"shadow", "get", "-config", cfg},
			} {
				r := sensorAgent(t, testContext(t), nil, args...)
				checkOutput(t, args, r)
				if r.code != 0 || !strings.Contains(r.stdout, `"interval": "5s"`) {
					t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
				}
				if strings.Contains(r.stdout+r.stderr, "s3cr") {
					t.Errorf("the proxy password is shown:\n%s%s", r.stdout, r.stderr)
				}
			}
			want, other := e443, e8443
			if tt.on8443 {
				want, other = e8443, e443
			}
			if n, m := want.ShadowRequests(), other.ShadowRequests(); n != 2 || m != 0 {
				t.Errorf("%d shadow requests where they belong, %d on the other emulator; want 2 and 0", n, m)
			}
			if _, ok := want.Shadow("pi-e2e", "sensor-agent"); !ok {
				t.Error("no shadow in the emulator the requests went to")
			}
		})
	}
}

func portNumber(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscan(p, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
