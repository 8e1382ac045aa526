package doctor

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sensor-agent/sensor-agent/publisher"
)

// What a failed test publish means, and the summary line.

func (d *doctor) publishFailure(err error, info publisher.TLSInfo, topic string) (detail, hint string) {
	var pe *publisher.Error
	if !errors.As(err, &pe) {
		return err.Error(), "see the message"
	}
	id := ""
	if d.leaf != nil {
		id = publisher.CertificateID(d.leaf)
	}
	switch {
	case pe.Status == 403 && pe.Message == "Missing Authentication Token":
		detail = fmt.Sprintf("403 Missing Authentication Token for %s: AWS did not use the client certificate", topic)
		offered := len(info.ALPNOffered) > 0
		hint = publisher.MissingTokenHint(&offered)
	case pe.Status == 403:
		detail = fmt.Sprintf("403 %s for %s: %s", nonEmpty(pe.ErrorType, "Forbidden"), topic, pe.Message)
		if pe.TraceID != "" {
			detail += " (traceId " + pe.TraceID + ")"
		}
		hint = publisher.PolicyHint(d.pc.Host, topic, id)
	case pe.Status == 401:
		detail = fmt.Sprintf("401 %s for %s: %s", nonEmpty(pe.ErrorType, "Unauthorized"), topic, pe.Message)
		hint = publisher.InactiveCertHint(id)
	case pe.Status != 0:
		detail = err.Error()
		switch pe.Kind {
		case publisher.Retry:
			hint = "a transient failure at AWS: the agent retries these by itself; run doctor again"
		case publisher.Permanent:
			hint = "AWS refuses this request for good: check the topic (-topic)"
		default:
			// A redirect, 404, an HTML page...: not AWS IoT's answer.
			hint = "the endpoint did not answer as AWS IoT does: fix what the message says, then run doctor again"
		}
	default:
		detail = err.Error()
		hint = "the connection failed during the publish: run doctor again"
	}
	return detail, hint
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Summary is the last line of the text output: which steps failed, how
// many warned and how many were skipped.
func Summary(steps []Step) string {
	var failed []string
	warned, skipped := 0, 0
	for _, s := range steps {
		switch s.Status {
		case StatusFail:
			failed = append(failed, s.Step)
		case StatusWarn:
			warned++
		case StatusSkip:
			skipped++
		}
	}
	extra := plural(warned, "warning") + fmt.Sprintf(", %d skipped", skipped)
	if len(failed) > 0 {
		return fmt.Sprintf("doctor: FAILED at %s (%s)", strings.Join(failed, ", "), extra)
	}
	return "doctor: all checks passed (" + extra + ")"
}
