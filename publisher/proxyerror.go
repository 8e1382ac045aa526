package publisher

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ProxyReason says which link of the proxy path broke.
type ProxyReason int

const (
	// ProxyUnreachable: the proxy could not be reached (refused, no route,
	// timeout, name not found) or closed the connection without an answer.
	ProxyUnreachable ProxyReason = iota + 1
	// ProxyTLSFailed: the TLS session with an https:// proxy failed (its
	// certificate is not trusted, or it does not speak TLS).
	ProxyTLSFailed
	// ProxyAuthRequired: 407 and no credentials were sent.
	ProxyAuthRequired
	// ProxyAuthRejected: 407 although credentials were sent: they are wrong,
	// or the proxy does not accept Basic authentication.
	ProxyAuthRejected
	// ProxyForbidden: 403, the proxy does not allow CONNECT to this host or
	// port.
	ProxyForbidden
	// ProxyUpstreamFailed: 5xx (502, 503, 504, ...): the proxy could not
	// reach the endpoint.
	ProxyUpstreamFailed
	// ProxyRefused: any other answer that is not 2xx.
	ProxyRefused
	// ProxyProtocol: the answer is not HTTP (an https:// proxy given as
	// http://, or not a proxy at all).
	ProxyProtocol
)

func (r ProxyReason) String() string {
	switch r {
	case ProxyUnreachable:
		return "unreachable"
	case ProxyTLSFailed:
		return "tls failed"
	case ProxyAuthRequired:
		return "authentication required"
	case ProxyAuthRejected:
		return "authentication rejected"
	case ProxyForbidden:
		return "forbidden"
	case ProxyUpstreamFailed:
		return "upstream failed"
	case ProxyRefused:
		return "refused"
	case ProxyProtocol:
		return "protocol"
	}
	return fmt.Sprintf("ProxyReason(%d)", int(r))
}

// ProxyError is a failure on the way through an HTTP proxy. It carries
// what the proxy said as facts; Error and the doctor word them.
type ProxyError struct {
	Reason ProxyReason
	Proxy  string // the proxy URL with the password redacted
	Source string // where the proxy came from: "endpoint.proxy", "HTTPS_PROXY", ...
	Target string // host:port the tunnel was asked for
	User   string // user name sent with Basic authentication, "" if none
	// Status and StatusText are the proxy's answer to CONNECT, 0 and ""
	// when there was none.
	Status     int
	StatusText string
	// AuthSchemes are the schemes a 407 offers in Proxy-Authenticate
	// ("Basic", "NTLM", "Negotiate"), in its order.
	AuthSchemes []string
	// SquidError is squid's X-Squid-Error ("ERR_ACCESS_DENIED 0").
	SquidError string
	// PageTitle is the title of the proxy's own HTML error page, "" when
	// it sent none.
	PageTitle string
	Err       error
}

func (e *ProxyError) Unwrap() error { return e.Err }

// Kind is Auth for what only a configuration change fixes (credentials,
// a forbidden port, a proxy that is not one, an untrusted proxy
// certificate) and Retry for what may pass by itself.
func (e *ProxyError) Kind() Kind {
	switch e.Reason {
	case ProxyUnreachable, ProxyUpstreamFailed:
		return Retry
	case ProxyTLSFailed:
		if isConnDropped(e.Err) || IsTimeout(e.Err) {
			return Retry
		}
	}
	return Auth
}

// Answer is the proxy's answer to CONNECT in words: "407 Proxy
// Authentication Required, offers NTLM, Negotiate", "403 Forbidden,
// ERR_ACCESS_DENIED 0"; "" when it gave none.
func (e *ProxyError) Answer() string {
	if e.Status == 0 {
		return ""
	}
	answer := strconv.Itoa(e.Status)
	if e.StatusText != "" {
		answer += " " + e.StatusText
	}
	var said []string
	if len(e.AuthSchemes) > 0 {
		said = append(said, "offers "+strings.Join(e.AuthSchemes, ", "))
	}
	if e.SquidError != "" {
		said = append(said, e.SquidError)
	}
	if len(said) > 0 {
		answer += ", " + strings.Join(said, "; ")
	}
	return answer
}

// UnsupportedAuth returns the schemes a 407 offers when Basic, the only
// one the agent speaks, is not among them ("NTLM, Negotiate"); "" when
// Basic is offered or the proxy named none.
func (e *ProxyError) UnsupportedAuth() string {
	for _, s := range e.AuthSchemes {
		if strings.EqualFold(s, "Basic") {
			return ""
		}
	}
	return strings.Join(e.AuthSchemes, ", ")
}

// NoBasicHint is the advice when a proxy offers only schemes the agent
// does not speak.
func (e *ProxyError) NoBasicHint() string {
	return fmt.Sprintf("the proxy offers only %s and does not offer Basic authentication, the only scheme the agent speaks: ask IT for Basic authentication for the device's account, or for an exemption for %s", e.UnsupportedAuth(), e.Target)
}

func (e *ProxyError) Error() string {
	var b strings.Builder
	b.WriteString("proxy " + e.Proxy)
	if e.Source != "" {
		b.WriteString(" (from " + e.Source + ")")
	}
	answer := e.Answer()
	switch e.Reason {
	case ProxyUnreachable:
		b.WriteString(" is unreachable")
		writeCause(&b, e.Err)
		b.WriteString("; check the proxy address and that the proxy is running")
	case ProxyTLSFailed:
		b.WriteString(": TLS with the proxy failed")
		writeCause(&b, e.Err)
		if isCertError(e.Err) {
			b.WriteString("; add the proxy's CA to ca_file, or use an http:// proxy URL")
		} else {
			b.WriteString("; is it an http:// proxy?")
		}
	case ProxyAuthRequired:
		fmt.Fprintf(&b, " requires authentication (%s) and no credentials were given", answer)
		if e.UnsupportedAuth() != "" {
			b.WriteString("; " + e.NoBasicHint())
		} else {
			b.WriteString("; put them in the proxy URL: http://USER:PASSWORD@host:port")
		}
	case ProxyAuthRejected:
		fmt.Fprintf(&b, " rejected the credentials of user %q (%s)", e.User, answer)
		if e.UnsupportedAuth() != "" {
			b.WriteString("; " + e.NoBasicHint())
		} else {
			b.WriteString("; check the user name and password")
		}
	case ProxyForbidden:
		fmt.Fprintf(&b, " forbids CONNECT to %s (%s); ask IT to allow CONNECT to %s", e.Target, answer, e.Target)
	case ProxyUpstreamFailed:
		fmt.Fprintf(&b, " cannot reach %s (%s): the endpoint is down or the proxy's own network does not let it through", e.Target, answer)
	case ProxyRefused:
		fmt.Fprintf(&b, " refused CONNECT to %s (%s)", e.Target, answer)
	case ProxyProtocol:
		b.WriteString(" did not answer CONNECT like an HTTP proxy")
		writeCause(&b, e.Err)
		b.WriteString("; check the proxy URL's scheme (http:// or https://) and port")
	default:
		b.WriteString(": " + e.Reason.String())
	}
	return b.String()
}

func writeCause(b *strings.Builder, err error) {
	if err != nil {
		b.WriteString(": " + err.Error())
	}
}

func isCertError(err error) bool {
	var (
		verr  *tls.CertificateVerificationError
		uaerr x509.UnknownAuthorityError
		hnerr x509.HostnameError
		inv   x509.CertificateInvalidError
	)
	return errors.As(err, &verr) || errors.As(err, &uaerr) || errors.As(err, &hnerr) || errors.As(err, &inv)
}
