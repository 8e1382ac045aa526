package publisher

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
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
	// Reached: the proxy was reached and sent CONNECT; a failure is then
	// about the tunnel, not about reaching the proxy.
	Reached bool
	Err     error
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

// Hint says what to do about e: the one wording for the publish error and
// the doctor alike.
func (e *ProxyError) Hint() string {
	where := e.Source
	if where == "" {
		where = "the proxy URL"
	}
	switch e.Reason {
	case ProxyUnreachable:
		return e.unreachableHint(where)
	case ProxyTLSFailed:
		if isCertError(e.Err) {
			return "the proxy's certificate is not trusted: add the proxy's CA to endpoint.ca_file, or use the proxy's http:// port"
		}
		return "is it an http:// proxy? write http:// in the proxy URL"
	case ProxyAuthRequired, ProxyAuthRejected:
		if schemes := e.UnsupportedAuth(); schemes != "" {
			return fmt.Sprintf("the proxy offers only %s and does not offer Basic authentication, the only scheme the agent speaks: ask IT for Basic authentication for the device's account, or for an exemption for %s", schemes, e.Target)
		}
		if e.Reason == ProxyAuthRequired {
			return "put the device's proxy account in " + where + ": http://USER:PASSWORD@host:port (ask IT for one)"
		}
		return "check the user name and password in " + where + " (percent-encode @ : / % in them, e.g. @ as %40); if they are correct, ask IT whether the account may use the proxy"
	case ProxyForbidden:
		return fmt.Sprintf("ask IT to allow CONNECT to %s through the proxy for this device", e.Target)
	case ProxyUpstreamFailed:
		return fmt.Sprintf("the endpoint is down, or the proxy's own network does not let it through: check endpoint.host, and ask IT to let the proxy reach %s", e.Target)
	case ProxyRefused:
		return fmt.Sprintf("ask IT to allow CONNECT to %s through the proxy", e.Target)
	case ProxyProtocol:
		return "check the proxy URL's scheme (http:// or https://) and port"
	}
	return ""
}

func (e *ProxyError) unreachableHint(where string) string {
	switch {
	case e.Reached:
		return fmt.Sprintf("the proxy drops CONNECT to this port silently, or is overloaded: ask IT to allow CONNECT to %s", e.Target)
	case errors.Is(e.Err, syscall.ECONNREFUSED):
		return "nothing listens there: check the proxy's address and port in " + where + " and that the proxy is running (ask IT which proxy to use)"
	case IsTimeout(e.Err):
		return "no answer: a firewall drops the connection, or the address is wrong: check it in " + where + " and that the proxy is running (ask IT which proxy to use)"
	}
	return "check the proxy's address and port in " + where + ", that the proxy is running, and the device's network (ask IT which proxy to use)"
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
	case ProxyTLSFailed:
		b.WriteString(": TLS with the proxy failed")
		writeCause(&b, e.Err)
	case ProxyAuthRequired:
		fmt.Fprintf(&b, " requires authentication (%s) and no credentials were given", answer)
	case ProxyAuthRejected:
		fmt.Fprintf(&b, " rejected the credentials of user %q (%s)", e.User, answer)
	case ProxyForbidden:
		fmt.Fprintf(&b, " forbids CONNECT to %s (%s)", e.Target, answer)
	case ProxyUpstreamFailed:
		fmt.Fprintf(&b, " cannot reach %s (%s)", e.Target, answer)
	case ProxyRefused:
		fmt.Fprintf(&b, " refused CONNECT to %s (%s)", e.Target, answer)
	case ProxyProtocol:
		b.WriteString(" did not answer CONNECT like an HTTP proxy")
		writeCause(&b, e.Err)
	default:
		b.WriteString(": " + e.Reason.String())
	}
	if h := e.Hint(); h != "" {
		b.WriteString("; " + h)
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
