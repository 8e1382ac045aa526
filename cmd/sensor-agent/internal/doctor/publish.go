package doctor

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sensor-agent/sensor-agent/publisher"
)

var regionRE = regexp.MustCompile(`\.iot\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(\.cn)?\.?$`)

// arnScope returns the ARN partition and region of an AWS IoT endpoint
// host (abc123-ats.iot.eu-west-1.amazonaws.com), "<region>" when it is
// not one.
func arnScope(host string) (partition, region string) {
	m := regionRE.FindStringSubmatch(strings.ToLower(host))
	if m == nil {
		return "aws", "<region>"
	}
	if m[2] != "" {
		return "aws-cn", m[1]
	}
	return "aws", m[1]
}

func (d *doctor) publishFailure(err error, info publisher.TLSInfo, topic string) (detail, hint string) {
	var pe *publisher.Error
	if !errors.As(err, &pe) {
		return err.Error(), "see the message"
	}
	id := ""
	if d.leaf != nil {
		id = publisher.CertificateID(d.leaf)
	}
	partition, region := arnScope(d.pc.Host)
	switch {
	case pe.Status == 403 && pe.Message == "Missing Authentication Token":
		detail = fmt.Sprintf("403 Missing Authentication Token for %s: AWS did not use the client certificate", topic)
		if len(info.ALPNOffered) == 0 {
			hint = "on port 443 AWS uses the client certificate only when ALPN " + publisher.ALPNProtocol + " is offered: set endpoint.alpn: auto (or on), or use port 8443"
		} else {
			hint = "ALPN " + publisher.ALPNProtocol + " was offered but did not reach AWS: something in the way removed it; ask IT for a bypass, or use port 8443 with endpoint.alpn: off"
		}
	case pe.Status == 403:
		detail = fmt.Sprintf("403 %s for %s: %s", nonEmpty(pe.ErrorType, "Forbidden"), topic, pe.Message)
		if pe.TraceID != "" {
			detail += " (traceId " + pe.TraceID + ")"
		}
		hint = fmt.Sprintf("the policy attached to the certificate must allow iot:Publish on arn:%s:iot:%s:<account-id>:topic/%s (see: aws iot list-attached-policies --target arn:%s:iot:%s:<account-id>:cert/%s); MQTT-only policy variables such as ${iot:Connection.Thing.ThingName} and ${iot:ClientId} never resolve over HTTPS: name the topics explicitly; or the certificate is not ACTIVE",
			partition, region, topic, partition, region, id)
	case pe.Status == 401:
		detail = fmt.Sprintf("401 %s for %s: %s", nonEmpty(pe.ErrorType, "Unauthorized"), topic, pe.Message)
		hint = fmt.Sprintf("the certificate must be registered and ACTIVE in this account and region: aws iot describe-certificate --certificate-id %s", id)
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
