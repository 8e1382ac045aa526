package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
)

// StepShadow reads the device's shadow after the test publish, on the same
// TLS session; it runs only when Options.Shadow asks for it, so it is not
// in Steps.
const StepShadow = "shadow"

// DefaultShadowName is the named shadow the agent uses.
const DefaultShadowName = "sensor-agent"

// shadowAfterPublish runs the shadow step on tc when it was asked for or
// the config has the shadow on: only
// after an answer to the test publish, which shows the session works.
func (d *doctor) shadowAfterPublish(ctx context.Context, tc net.Conn, pubErr error) {
	if !d.wantShadow() {
		return
	}
	if pe, ok := errors.AsType[*publisher.Error](pubErr); ok && pe.Status == 0 {
		d.skip(StepShadow, "needs an answer to the test publish (see publish)")
		return
	}
	d.shadow(ctx, tc)
}

// shadow GETs the device's shadow: 200 and 404 (not created yet) pass;
// 403 says what the policy must allow.
func (d *doctor) shadow(ctx context.Context, tc net.Conn) {
	thing, name := d.cfg.Shadow.Thing, d.shadowName() // the thing defaults to device_id
	ref := fmt.Sprintf("shadow %s of thing %s", name, thing)
	start := time.Now()
	reply, err := d.prober.Shadow(ctx, tc, http.MethodGet, thing, name, nil)
	se, isShadow := errors.AsType[*publisher.ShadowError](err)
	switch {
	case err == nil:
		var v struct{ Version int64 }
		_ = json.Unmarshal(reply.Body, &v)
		d.result(StepShadow, start, StatusPass, fmt.Sprintf("%d OK: %s, version %d (%d bytes)", reply.Status, ref, v.Version, len(reply.Body)), "")
	case isShadow && se.Status == http.StatusNotFound:
		d.result(StepShadow, start, StatusPass,
			fmt.Sprintf("404 %s: no %s yet, which is fine: reading it is allowed, and it is created by the first report or desired state", se.Type, ref), "")
	case isShadow && se.Status == http.StatusForbidden && se.Message == "Missing Authentication Token":
		d.result(StepShadow, start, StatusFail, fmt.Sprintf("403 Missing Authentication Token for %s: AWS did not use the client certificate", ref),
			publisher.MissingTokenHint(nil))
	case isShadow && se.Status == http.StatusForbidden:
		d.result(StepShadow, start, StatusFail, fmt.Sprintf("403 %s for %s: %s", nonEmpty(se.Type, "Forbidden"), ref, se.Message),
			publisher.ShadowPolicyHint(d.pc.Host, http.MethodGet, thing, name)+"; the agent also needs iot:UpdateThingShadow on it to report")
	default:
		d.result(StepShadow, start, StatusFail, err.Error(), "see the message; publishing works, so the connection is not the problem")
	}
}

func (d *doctor) shadowName() string {
	switch {
	case d.opts.ShadowName != "":
		return d.opts.ShadowName
	case d.cfg != nil && d.cfg.Shadow.Name != "":
		return d.cfg.Shadow.Name
	}
	return DefaultShadowName
}

// wantShadow: asked for (-shadow), or the config has the shadow on.
func (d *doctor) wantShadow() bool {
	return d.opts.Shadow || d.cfg != nil && d.cfg.Shadow.Enabled
}

// skipShadow marks the shadow step skipped when it was asked for and the
// run ended before it.
func (d *doctor) skipShadow() {
	if !d.wantShadow() {
		return
	}
	for _, s := range d.steps {
		if s.Step == StepShadow {
			return
		}
	}
	why := "needs a TLS session with the endpoint"
	if f := d.lastFailed(); f != "" {
		why += " (see " + f + ")"
	}
	d.skip(StepShadow, why)
}
