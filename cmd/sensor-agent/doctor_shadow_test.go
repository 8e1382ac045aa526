package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/sensor-agent/sensor-agent/cmd/sensor-agent/internal/doctor"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// TestDoctorShadow: doctor -shadow (or a config with the shadow on) reads
// the device's shadow after the test publish.
func TestDoctorShadow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		noFlag  bool // without -shadow: the config turns the step on
		prepare func(t *testing.T, f *doctorFixture)
		marks   string // of Steps, then the shadow step
		detail  string // the shadow step's
		hint    string
	}{
		{name: "no shadow yet", marks: "✓✓✓✓--✓✓✓✓",
			detail: "404 ResourceNotFoundException: no shadow sensor-agent of thing pi-doctor yet, which is fine"},
		{name: "shadow exists", marks: "✓✓✓✓--✓✓✓✓",
			prepare: func(t *testing.T, f *doctorFixture) {
				if _, err := f.emu.UpdateShadow("pi-doctor", "sensor-agent", []byte(`{"state":{"reported":{"ok":true}}}`)); err != nil {
					t.Fatal(err)
				}
			},
			detail: "200 OK: shadow sensor-agent of thing pi-doctor, version 1"},
		{name: "shadow on in the config, thing named there", noFlag: true, marks: "✓✓✓✓--✓✓✓✓",
			prepare: func(t *testing.T, f *doctorFixture) {
				f.cfg.extra = "shadow: {enabled: true, thing: greenhouse-1, name: fleet}\n"
			},
			detail: "404 ResourceNotFoundException: no shadow fleet of thing greenhouse-1 yet, which is fine"},
		{name: "policy without the shadow actions", marks: "✓✓✓✓--✓✓✓✗",
			prepare: func(t *testing.T, f *doctorFixture) { f.emu.SetShadowDenied(true) },
			detail:  "403 ForbiddenException for shadow sensor-agent of thing pi-doctor: Forbidden",
			hint:    "must allow iot:GetThingShadow on arn:aws:iot:<region>:<account-id>:thing/pi-doctor/sensor-agent"},
		{name: "443 without ALPN", marks: "✓✓✓✓--✓!✗✗",
			prepare: func(t *testing.T, f *doctorFixture) { f.cfg.alpn = "off" },
			detail:  "403 Missing Authentication Token for shadow sensor-agent of thing pi-doctor",
			hint:    "the ALPN name x-amzn-http-ca"},
		{name: "endpoint down", marks: "✓✓✓✓--✗---",
			prepare: func(t *testing.T, f *doctorFixture) {
				if err := f.emu.SetDown(true); err != nil {
					t.Fatal(err)
				}
			},
			detail: "needs a TLS session with the endpoint (see tcp)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			emu, pki := startEmulator(t, iotemu.Options{})
			f := &doctorFixture{emu: emu, pki: pki, cfg: doctorConfig{
				host: "localhost", port: portNum(t, emu.ALPNAddr()), alpn: "on",
				cert: pki.Path(iotemu.DeviceCertFile), key: pki.Path(iotemu.DeviceKeyFile), ca: pki.Path(iotemu.CAFile),
			}}
			if tt.prepare != nil {
				tt.prepare(t, f)
			}
			args := []string{"-json", "-shadow", "-config", f.cfg.write(t)}
			if tt.noFlag {
				args = slices.Delete(args, 1, 2)
			}
			r := runDoctor(t, testContext(t), nil, true, args...)
			steps := doctorJSON(t, r.stdout)
			var names []string
			for _, s := range steps {
				names = append(names, s.Step)
			}
			if want := append(slices.Clone(doctor.Steps), doctor.StepShadow); !slices.Equal(names, want) {
				t.Fatalf("steps %q, want %q\n%s", names, want, r.stdout)
			}
			last := steps[len(steps)-1]
			if got := marksOf(steps); got != tt.marks || !strings.Contains(last.Detail, tt.detail) || !strings.Contains(last.Hint, tt.hint) {
				t.Errorf("marks %s, shadow step %+v; want %s, detail with %q, hint with %q", got, last, tt.marks, tt.detail, tt.hint)
			}
			if wantCode := map[bool]int{true: 1, false: 0}[strings.Contains(tt.marks, "✗")]; r.code != wantCode {
				t.Errorf("exit status %d, want %d", r.code, wantCode)
			}
		})
	}
}
