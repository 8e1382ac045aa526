package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
)

// The TLS step and the test publish, and what a failed handshake means.

// tlsAndPublish handshakes and publishes. The TLS line waits for the
// publish: with TLS 1.3 the server judges the client certificate after the
// client's handshake is done, so a refused certificate shows only when the
// reply is read, and it belongs on the TLS line.
func (d *doctor) tlsAndPublish(ctx context.Context, conn net.Conn) {
	p := d.prober
	start := time.Now()
	tc, info, err := p.Handshake(ctx, conn, d.pair)
	tlsDur := time.Since(start)
	if err != nil {
		detail, hint := d.tlsFailure(err, info, false)
		d.add(Step{Step: StepTLS, Status: StatusFail, DurationMS: ms(tlsDur), Detail: detail, Hint: hint})
		d.skip(StepPublish, "needs a TLS session (see tls)")
		return
	}
	defer tc.Close()
	tlsStep := Step{Step: StepTLS, Status: StatusPass, DurationMS: ms(tlsDur)}
	tlsStep.Detail, tlsStep.Hint, tlsStep.Status = d.tlsSuccess(info)

	topic := d.opts.Topic
	if topic == "" {
		topic = "sensor-agent/" + d.cfg.DeviceID + "/doctor"
	}
	payload, _ := json.Marshal(struct {
		Doctor bool   `json:"doctor"`
		Device string `json:"device"`
		Time   string `json:"time"`
	}{true, d.cfg.DeviceID, d.now().UTC().Format(time.RFC3339Nano)})
	start = time.Now()
	res, err := p.Publish(ctx, tc, topic, payload)
	pubDur := time.Since(start)
	var pe *publisher.Error
	if err != nil && errors.As(err, &pe) && pe.Status == 0 {
		if _, ok := publisher.ServerAlert(err); ok {
			tlsStep.Status = StatusFail
			tlsStep.Detail, tlsStep.Hint = d.tlsFailure(err, info, true)
			d.add(tlsStep)
			d.skip(StepPublish, "needs a TLS session the server accepts (see tls)")
			return
		}
	}
	d.add(tlsStep)
	pub := Step{Step: StepPublish, DurationMS: ms(pubDur)}
	if err == nil {
		pub.Status = StatusPass
		pub.Detail = fmt.Sprintf("%d OK: %d bytes to %s, traceId %s", res.Status, len(payload), topic, res.TraceID)
	} else {
		pub.Status = StatusFail
		pub.Detail, pub.Hint = d.publishFailure(err, info, topic)
	}
	d.add(pub)
	d.shadowAfterPublish(ctx, tc, err)
}

func (d *doctor) tlsSuccess(info publisher.TLSInfo) (detail, hint, status string) {
	status = StatusPass
	var facts, hints []string
	facts = append(facts, info.Version)
	if info.ALPN != "" {
		facts = append(facts, "ALPN "+info.ALPN)
	} else if len(info.ALPNOffered) > 0 {
		facts = append(facts, fmt.Sprintf("ALPN %s offered, NONE negotiated", strings.Join(info.ALPNOffered, ",")))
	} else {
		facts = append(facts, "no ALPN offered")
	}
	if info.ServerName != "" {
		facts = append(facts, "SNI "+info.ServerName)
	} else {
		facts = append(facts, "no SNI (the host is an address)")
	}
	if info.ClientCertRequested {
		facts = append(facts, "client certificate sent")
	} else {
		facts = append(facts, "the server did NOT ask for the client certificate")
	}
	facts = append(facts, "chain "+chainString(info.Chain))
	switch {
	case info.AmazonRoot:
		facts = append(facts, fmt.Sprintf("issuer: Amazon (root %q)", info.Root))
	case info.AmazonHost:
		// Not reached: the handshake fails with an *InspectionError.
		facts = append(facts, fmt.Sprintf("issuer: NOT Amazon (root %q)", info.Root))
	default:
		facts = append(facts, fmt.Sprintf("root %q: not Amazon's, accepted because %s is not an AWS host", info.Root, d.pc.Host))
	}
	port := d.prober.Port()
	offered := len(info.ALPNOffered) > 0
	switch {
	case offered && info.ALPN != info.ALPNOffered[0]:
		status = StatusWarn
		hints = append(hints, fmt.Sprintf("the server did not take the ALPN name %s: something in the way removed it (a TLS-inspecting proxy), or port %d is not AWS IoT's 443; AWS would then answer 403 Missing Authentication Token", publisher.ALPNProtocol, port))
	case !offered && port == 443:
		status = StatusWarn
		hints = append(hints, "no ALPN on port 443 (endpoint.alpn: off): AWS uses the client certificate on 443 only with ALPN "+publisher.ALPNProtocol+": set endpoint.alpn: auto")
	}
	if !info.ClientCertRequested {
		status = StatusWarn
		if offered {
			hints = append(hints, "a server that wants mutual TLS asks for the certificate: something in the way terminates TLS, or this is not AWS IoT")
		} else {
			hints = append(hints, "on port 443 AWS asks for the certificate only when ALPN "+publisher.ALPNProtocol+" is offered: set endpoint.alpn: auto or on (or use port 8443)")
		}
	}
	return strings.Join(facts, "; "), strings.Join(hints, "; "), status
}

// chainString shows a chain as "leaf ← intermediate ← root".
func chainString(chain []publisher.CertSummary) string {
	if len(chain) == 0 {
		return "(none)"
	}
	names := make([]string, 0, len(chain)+1)
	for _, c := range chain {
		names = append(names, strconv.Quote(c.Subject))
	}
	if last := chain[len(chain)-1]; last.Issuer != last.Subject {
		names = append(names, strconv.Quote(last.Issuer))
	}
	return strings.Join(names, " ← ")
}

// tlsFailure words a failed handshake; afterHandshake: the server's alert
// came after the client's handshake (TLS 1.3), with the first reply.
func (d *doctor) tlsFailure(err error, info publisher.TLSInfo, afterHandshake bool) (detail, hint string) {
	p := d.prober
	ep := p.Endpoint()
	via := ""
	if px, ok := p.Proxy(); ok {
		via = " through proxy " + px.URL
	}
	var (
		ie   *publisher.InspectionError
		hn   x509.HostnameError
		inv  x509.CertificateInvalidError
		rh   tls.RecordHeaderError
		verr *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &ie):
		if ie.Verified {
			detail = fmt.Sprintf("the server certificate of %s%s was issued by %s, NOT by Amazon: a TLS-inspecting proxy or firewall is in the way (its CA is in this device's trust store)", ep, via, ie.Issuer)
		} else {
			detail = fmt.Sprintf("the server certificate of %s%s is not trusted: issued by %s, a CA this device does not trust; unless that is the endpoint's own CA (then give it in endpoint.ca_file), a TLS-inspecting proxy or firewall is in the way", ep, via, ie.Issuer)
		}
		hint = "mutual TLS (the device certificate) cannot pass TLS inspection: ask IT for an inspection bypass (no TLS inspection) for " + d.pc.Host
	case errors.As(err, &hn):
		detail = fmt.Sprintf("the server certificate of %s%s does not match the host: %v", ep, via, hn)
		hint = "check endpoint.host: the account's iot:Data-ATS endpoint (aws iot describe-endpoint --endpoint-type iot:Data-ATS); or something in the way answers in its place"
	case errors.As(err, &inv):
		detail = fmt.Sprintf("the server certificate of %s is not valid at this device's time %s: %v", ep, d.now().UTC().Format(time.RFC3339), inv)
		hint = "the clock is probably wrong (see clock): let NTP set it"
	case errors.As(err, &verr):
		detail = fmt.Sprintf("the server certificate of %s%s is not trusted: %v", ep, via, verr)
		hint = "install the system's CA certificates (Debian: ca-certificates) or give the endpoint's CA in endpoint.ca_file"
	case errors.As(err, &rh):
		detail = fmt.Sprintf("%s%s does not speak TLS: %v", ep, via, err)
		hint = "check endpoint.port (443 or 8443); a captive portal or an HTTP-only filter may answer instead"
	default:
		if alert, ok := publisher.ServerAlert(err); ok {
			return d.alertFailure(alert, err, info, afterHandshake)
		}
		switch {
		case publisher.IsTimeout(err):
			detail = fmt.Sprintf("no TLS answer from %s%s within %s", ep, via, p.Timeout())
			hint = fmt.Sprintf("something in the way holds TLS to %s: ask IT to allow TLS to it", ep)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
			detail = fmt.Sprintf("the connection to %s%s was closed during the TLS handshake: %v", ep, via, err)
			hint = fmt.Sprintf("a firewall or proxy that filters TLS (by SNI or by port) is in the way: ask IT to allow TLS to %s", ep)
		default:
			detail = fmt.Sprintf("TLS with %s%s failed: %v", ep, via, err)
			hint = "see the message"
		}
	}
	return detail, hint
}

func (d *doctor) alertFailure(alert tls.AlertError, err error, info publisher.TLSInfo, afterHandshake bool) (detail, hint string) {
	ep := d.prober.Endpoint()
	when := "refused the TLS handshake"
	if afterHandshake {
		when = "refused the TLS session right after the handshake"
	}
	switch uint8(alert) {
	case 120: // no_application_protocol
		return fmt.Sprintf("%s %s: it does not accept the ALPN offer %s (alert %q)", ep, when, strings.Join(info.ALPNOffered, ","), alert.Error()),
			"on port 8443 set endpoint.alpn: off; on 443 the offer must be exactly " + publisher.ALPNProtocol
	case 70, 71: // protocol_version, insufficient_security
		return fmt.Sprintf("%s %s: TLS version or ciphers not accepted (alert %q)", ep, when, alert.Error()),
			"AWS IoT needs TLS 1.2 or 1.3: is this the AWS IoT endpoint?"
	case 40, 42, 43, 44, 45, 46, 48, 49, 116:
		id := ""
		if d.leaf != nil {
			id = publisher.CertificateID(d.leaf)
		}
		hint = publisher.InactiveCertHint(id) + "; cert_file and key_file must be the pair AWS issued"
		if d.leaf != nil && !d.certValid {
			hint = "the device certificate is outside its validity (see certificate and clock); " + hint
		}
		return fmt.Sprintf("%s %s: it does not accept the client certificate (alert %q)", ep, when, alert.Error()), hint
	}
	return fmt.Sprintf("%s %s: %v", ep, when, err), "see the message"
}
