package main

// The agent's Device Shadow with the real binary, on each route (direct,
// squid with Basic auth, the 8443-style fallback): reports arrive and
// change when a sensor fails and recovers; a desired interval is applied
// within a poll and reported back; an invalid value and an endpoint key
// are refused, reported, and the agent runs on; the desired state
// survives a restart while the endpoint is down.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sensor-agent/sensor-agent/agent/shadow"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

const shadowAgentSensors = `  - {name: air, driver: sim, interval: 100ms}
  - {name: flaky, driver: sim, interval: 100ms, fail_open: 6}
`

// dig returns the value at path in nested objects, nil when absent.
func dig(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

// shadowWatch follows one shadow's versions in the emulator.
type shadowWatch struct {
	t       *testing.T
	ctx     context.Context
	srv     *iotemu.Server
	p       *proc
	version int64
}

// until waits for a version whose reported state satisfies ok, from
// the one seen last on, and returns that state.
func (w *shadowWatch) until(what string, ok func(reported map[string]any) bool) map[string]any {
	w.t.Helper()
	next := max(w.version, 1)
	for {
		doc, err := w.srv.WaitShadow(w.ctx, "pi-shadow", "sensor-agent", next)
		if err != nil {
			w.t.Fatalf("waiting for %s: %v\nagent's stderr:\n%s", what, err, w.p.stderr)
		}
		state, v := shadowState(w.t, doc)
		w.version, next = v, v+1
		if rep, _ := state["reported"].(map[string]any); rep != nil && ok(rep) {
			return rep
		}
	}
}

// delta is the shadow's delta now: what desired state the device has not
// taken.
func (w *shadowWatch) delta() map[string]any {
	w.t.Helper()
	doc, ok := w.srv.Shadow("pi-shadow", "sensor-agent")
	if !ok {
		w.t.Fatal("no shadow")
	}
	state, _ := shadowState(w.t, doc)
	d, _ := state["delta"].(map[string]any)
	return d
}

// desire sets desired state as an operator would (the AWS CLI), and
// returns the shadow's version after it.
func (w *shadowWatch) desire(doc string) int64 {
	w.t.Helper()
	b, err := w.srv.UpdateShadow("pi-shadow", "sensor-agent", []byte(`{"state":{"desired":`+doc+`}}`))
	if err != nil {
		w.t.Fatal(err)
	}
	_, v := shadowState(w.t, b)
	return v
}

func TestShadowAgentE2E(t *testing.T) {
	t.Parallel()
	for _, rt := range shadowRoutes {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			e443, pki := startEmulator(t, iotemu.Options{PlainAddr: iotemu.Off})
			e8443, err := iotemu.Start(iotemu.Options{PKI: pki, ALPNAddr: iotemu.Off})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(e8443.Close)
			cfg := agentConfig{device: "pi-shadow", addr: e443.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
				maxReadings: 50, flushInterval: "500ms", sensors: shadowAgentSensors,
				extra: "shadow: {enabled: true, report_interval: 1m, poll_interval: 1s}\n"}.write(t)
			editConfig(t, cfg, rt.endpoint(t, e443, e8443))
			srv := e443
			if rt.on8443 {
				srv = e8443
			}
			p := startEnv(t, ctx, nil, []string{"RUNTIME_DIRECTORY="}, "run", "-config", cfg)
			w := &shadowWatch{t: t, ctx: ctx, srv: srv, p: p}
			shadowScenario(t, ctx, w, cfg)
			if rt.on8443 && e443.ShadowRequests() != 0 {
				t.Errorf("%d shadow requests reached the 443-style endpoint, which is down", e443.ShadowRequests())
			}
			if strings.Contains(p.stderr.String(), "s3cr") {
				t.Error("the proxy password is in the log")
			}
		})
	}
}

func shadowScenario(t *testing.T, ctx context.Context, w *shadowWatch, cfg string) {
	rep := w.until("a first report", func(r map[string]any) bool { return dig(r, "agent", "version") != nil })
	if dig(rep, "sensors", "air", "driver") != "sim" || dig(rep, "route", "port") == nil || dig(rep, "spool", "pending") == nil {
		t.Errorf("first report lacks sensors, route or spool: %v", rep)
	}
	w.until("the flaky sensor failing", func(r map[string]any) bool { return dig(r, "sensors", "flaky", "healthy") == false })
	w.until("the flaky sensor recovered", func(r map[string]any) bool { return dig(r, "sensors", "flaky", "healthy") == true })

	// flush_interval is not part of what is reported on its own: only
	// the desired state mirrored at its paths clears the delta.
	v := w.desire(`{"sensors":{"air":{"interval":"250ms"}},"publish":{"flush_interval":"400ms"}}`)
	w.until("the interval applied and reported", func(r map[string]any) bool {
		av, _ := dig(r, "remote", "applied_version").(float64)
		return int64(av) >= v && dig(r, "sensors", "air", "interval") == "250ms"
	})
	if d := w.delta(); d != nil {
		t.Errorf("delta %v after the desired state was taken, want none", d)
	}
	w.desire(`{"sensors":{"air":{"interval":"soon"}}}`)
	rep = w.until("the invalid interval refused", func(r map[string]any) bool { return dig(r, "remote", "config_error") != nil })
	if e, _ := dig(rep, "remote", "config_error").(string); !strings.Contains(e, "sensors[0].interval") || dig(rep, "sensors", "air", "interval") != "250ms" {
		t.Errorf("after an invalid interval: config_error %q, air interval %v; want the error and 250ms kept", e, dig(rep, "sensors", "air", "interval"))
	}
	if d := w.delta(); dig(d, "sensors", "air", "interval") != "soon" {
		t.Errorf("delta %v after a refused desired state, want it to name the refused interval", d)
	}
	w.desire(`{"endpoint":{"host":"evil.example"},"sensors":{"air":{"interval":"250ms"}}}`)
	rep = w.until("the endpoint refused", func(r map[string]any) bool {
		e, _ := dig(r, "remote", "config_error").(string)
		return strings.Contains(e, "desired.endpoint: not settable remotely")
	})
	v = w.desire(`{"endpoint":null}`)
	w.until("the error cleared", func(r map[string]any) bool {
		av, _ := dig(r, "remote", "applied_version").(float64)
		return int64(av) >= v && dig(r, "remote", "config_error") == nil
	})

	// A restart while the endpoint is down starts with the saved state.
	if r := w.p.terminate(); r.code != 0 {
		t.Fatalf("agent exit %d\n%s", r.code, r.stderr)
	}
	if err := w.srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	p := startEnv(t, ctx, nil, []string{"RUNTIME_DIRECTORY="}, "run", "-config", cfg)
	w.p = p
	p.waitOutput(ctx, p.stderr, regexp.MustCompile(`msg="remote configuration from the shadow in effect" version=\d+ desired="\{\\"publish\\":\{\\"flush_interval\\":\\"400ms\\"\},\\"sensors\\":\{\\"air\\":\{\\"interval\\":\\"250ms\\"\}\}\}"`))
	p.waitOutput(ctx, p.stderr, regexp.MustCompile(`msg="status socket"`))
	st := runStatus(t, ctx, cfg, "-json")
	var rep2 statusReport
	if err := json.Unmarshal([]byte(st.stdout), &rep2); err != nil {
		t.Fatalf("status -json: %v\n%s%s", err, st.stdout, st.stderr)
	}
	for _, s := range rep2.Sensors {
		if s.Name == "air" && s.Interval != "250ms" {
			t.Errorf("after a restart offline: air interval %s, want the remote 250ms", s.Interval)
		}
	}
	if err := w.srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	w.until("a report from the restarted agent", func(r map[string]any) bool {
		return dig(r, "agent", "started") != dig(rep, "agent", "started") && dig(r, "sensors", "air", "interval") == "250ms"
	})
}

// TestCheckShowsRemoteConfig: `check` shows the desired state saved from
// the shadow, whether it still applies to the file, and checks with it.
func TestCheckShowsRemoteConfig(t *testing.T) {
	t.Parallel()
	_, pki := startEmulator(t, iotemu.Options{PlainAddr: iotemu.Off})
	tests := []struct {
		name, saved string
		code        int
		want        []string
	}{
		{"applies", `{"version":3,"desired":{"sensors":{"flaky":{"enabled":false}}}}`, 0, []string{
			`remote config (shadow version 3): {"sensors":{"flaky":{"enabled":false}}}: applies; the checks below use the file with it`,
			"sensor flaky: disabled (enabled: false)"}},
		{"no longer applies", `{"version":4,"desired":{"sensors":{"gone":{"interval":"1s"}}}}`, 1, []string{
			"remote config: FAIL no longer applies to the file, run would use the file alone:",
			"desired.sensors.gone: the config file has no sensor named gone (it has: air, flaky)"}},
		{"none", ``, 0, []string{"remote config: none saved (shadow pi-shadow/sensor-agent)"}},
		{"damaged", `{"version":`, 1, []string{"remote config: FAIL shadow:", "is damaged", "remove it to start from the config file alone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			state := t.TempDir()
			if tt.saved != "" {
				if err := os.WriteFile(filepath.Join(state, shadow.DesiredFile), []byte(tt.saved), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := agentConfig{device: "pi-shadow", stateDir: state, addr: "127.0.0.1:1", alpn: "on", pki: pki, format: "batch",
				maxReadings: 50, flushInterval: "1s", sensors: strings.ReplaceAll(shadowAgentSensors, ", fail_open: 6", ""),
				extra: "shadow: {enabled: true}\n"}.write(t)
			r := sensorAgent(t, testContext(t), nil, "check", "-config", cfg)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d", r.code, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s%s", w, r.stdout, r.stderr)
				}
			}
		})
	}
}
