package publisher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"syscall"
	"time"
)

// Kind says what the caller must do about a failed publish.
type Kind int

const (
	// Retry: transient (network, lost reply, timeout, 408, 429, 5xx). Keep
	// the message and try again with backoff.
	Retry Kind = iota + 1
	// Permanent: this message can never succeed (AWS's 400
	// InvalidRequestException, 413, invalid topic, oversized payload). Drop
	// or split it; retrying is useless. Only an answer about this very
	// message is Permanent: anything else would dead-letter every message.
	Permanent
	// Auth: a configuration, policy or network-path problem that only a
	// human fixes: 401, 403, TLS trust or client certificate refused, and
	// every answer that says the endpoint is not AWS IoT's publish API (3xx,
	// 404, 405, a 400 that is not AWS's, other 4xx, a 2xx other than 200
	// without AWS's JSON). Keep the data, back off long and report loudly.
	Auth
)

func (k Kind) String() string {
	switch k {
	case 0:
		return "none"
	case Retry:
		return "retry"
	case Permanent:
		return "permanent"
	case Auth:
		return "auth"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is a failed publish.
type Error struct {
	Kind      Kind
	Topic     string
	Status    int    // HTTP status, 0 when no response was received
	ErrorType string // x-amzn-ErrorType name without the trailing ":..."
	TraceID   string // from the response body
	RequestID string // x-amzn-RequestId
	Message   string // server message, or what the client was doing
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Location is a redirect's target (3xx), password redacted. Redirects
	// are never followed.
	Location string
	// Err is the cause: for failures before any reply, often a
	// *ProxyError or an *InspectionError (use errors.As).
	Err error

	// detail, when set, is the whole description (both ports failed).
	detail string
	// advice, when set, replaces hint: what the reply says is wrong and
	// what to do (reply.go).
	advice string
	// op, when set, names the request instead of "publish <topic>": a
	// shadow request (shadow.go).
	op string
}

// prefix is what the description starts with.
func (e *Error) prefix() string {
	if e.op != "" {
		return e.op + ": "
	}
	return "publish " + e.Topic + ": "
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.prefix())
	if e.detail != "" {
		b.WriteString(e.detail)
	} else if e.Status != 0 {
		fmt.Fprintf(&b, "%d", e.Status)
		name := e.ErrorType
		if name == "" {
			name = http.StatusText(e.Status)
		}
		if name != "" {
			b.WriteString(" " + name)
		}
		if e.Location != "" {
			b.WriteString(" to " + e.Location)
		}
		if e.Message != "" {
			b.WriteString(": " + e.Message)
		}
		if e.TraceID != "" {
			b.WriteString(" (traceId " + e.TraceID + ")")
		}
	} else {
		b.WriteString(e.Message)
		if e.Err != nil {
			if e.Message != "" {
				b.WriteString(": ")
			}
			b.WriteString(e.Err.Error())
		}
	}
	if h := e.hint(); h != "" {
		b.WriteString("; " + h)
	}
	return b.String()
}

// hint tells the operator what usually causes an error that the server
// describes poorly.
func (e *Error) hint() string {
	if e.advice != "" {
		return e.advice
	}
	switch {
	case e.Status == http.StatusForbidden && e.Message == "Missing Authentication Token":
		return MissingTokenHint(nil)
	case e.Status == http.StatusForbidden:
		return PolicyHint("", e.Topic, "")
	case e.Status == http.StatusUnauthorized:
		return InactiveCertHint("")
	case e.Status == http.StatusRequestEntityTooLarge:
		return fmt.Sprintf("split the payload into messages of at most %d bytes", MaxPayload)
	}
	return ""
}

func (e *Error) Unwrap() error { return e.Err }

// body is the description without its "publish <topic>: " prefix.
func (e *Error) body() string { return strings.TrimPrefix(e.Error(), e.prefix()) }

// KindOf returns the Kind of the first *Error in err's chain. A nil error has
// Kind 0; errors that are not *Error count as Retry, because losing data on
// an unclassified error is worse than retrying it.
func KindOf(err error) Kind {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return Retry
}

// kindForStatus maps the status of a reply that is not a success to a
// Kind; fromAWS says whether the reply is AWS's (x-amzn-ErrorType or AWS's
// JSON body, see reply.go). Only what says that this very message can never
// be accepted is Permanent: AWS's 400 and a 413 (split and resent). 408 is a
// timeout, 429 a throttle and 5xx the server's trouble: Retry. Everything
// else (1xx, 2xx other than 200, 3xx, 401, 403, 404, 405, a 400 that is
// not AWS's, other 4xx, nonsense above 599) says the endpoint, its
// certificate or something in the way is wrong, whatever the message: Auth,
// so the data is kept until a human fixes it.
func kindForStatus(status int, fromAWS bool) Kind {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return Retry
	case status >= 500 && status <= 599:
		return Retry
	case status == http.StatusRequestEntityTooLarge:
		return Permanent
	case status == http.StatusBadRequest && fromAWS:
		return Permanent
	}
	return Auth
}

// TLS alerts that mean the server refused our certificate or our handshake
// parameters: configuration problems, not transient ones.
var authAlerts = map[uint8]bool{
	40:  true, // handshake_failure
	42:  true, // bad_certificate
	43:  true, // unsupported_certificate
	44:  true, // certificate_revoked
	45:  true, // certificate_expired
	46:  true, // certificate_unknown
	48:  true, // unknown_ca
	49:  true, // access_denied
	70:  true, // protocol_version
	71:  true, // insufficient_security
	116: true, // certificate_required
	120: true, // no_application_protocol
}

// remoteAlert returns the TLS alert the server sent, if err is one.
// crypto/tls reports received alerts as net.OpError{Op: "remote error"}
// wrapping an unexported uint8 type, hence the reflection.
func remoteAlert(err error) (uint8, bool) {
	if a, ok := errors.AsType[tls.AlertError](err); ok {
		return uint8(a), true
	}
	op, ok := errors.AsType[*net.OpError](err)
	if !ok || op.Op != "remote error" || op.Err == nil {
		return 0, false
	}
	v := reflect.ValueOf(op.Err)
	if v.Kind() != reflect.Uint8 {
		return 0, false
	}
	return uint8(v.Uint()), true
}

// classifyNetError builds the Error for a request that got no HTTP response.
func classifyNetError(topic, endpoint string, timeout time.Duration, parent, attempt context.Context, err error) *Error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err // its "Post https://..." prefix repeats what we say
	}
	e := &Error{Kind: Retry, Topic: topic, Err: err}
	var (
		verr   *tls.CertificateVerificationError
		uaerr  x509.UnknownAuthorityError
		hnerr  x509.HostnameError
		invErr x509.CertificateInvalidError
		rhErr  tls.RecordHeaderError
		dnsErr *net.DNSError
		pxErr  *ProxyError
		inErr  *InspectionError
		dlErr  *dialError
	)
	switch {
	case parent.Err() != nil:
		e.Message = "cancelled"
		e.Err = parent.Err()
	case attempt.Err() != nil:
		e.Message = fmt.Sprintf("no reply from %s within %s", endpoint, timeout)
		if !errors.Is(err, context.DeadlineExceeded) {
			e.Err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
	case errors.As(err, &pxErr):
		// The proxy's answer, by meaning; it names the proxy (redacted).
		e.Kind = pxErr.Kind()
		e.Err = pxErr
	case errors.As(err, &inErr):
		e.Kind = Auth
		e.Err = inErr
	case errors.As(err, &hnerr):
		e.Kind = Auth
		e.Message = fmt.Sprintf("server certificate of %s does not match the host name", endpoint)
	case errors.As(err, &invErr):
		e.Kind = Auth
		e.Message = fmt.Sprintf("server certificate of %s is not valid (is the clock right?)", endpoint)
	case errors.As(err, &uaerr), errors.As(err, &verr):
		e.Kind = Auth
		e.Message = fmt.Sprintf("server certificate of %s is not trusted (check the CA file; or a TLS-inspecting proxy or firewall is in the way)", endpoint)
	case errors.As(err, &rhErr):
		e.Kind = Auth
		e.Message = fmt.Sprintf("%s does not speak TLS (wrong port?)", endpoint)
	case isAuthAlert(err):
		e.Kind = Auth
		e.Message = fmt.Sprintf("%s refused the TLS handshake (client certificate not accepted, or not signed by a CA it trusts)", endpoint)
	case errors.As(err, &dnsErr):
		e.Message = fmt.Sprintf("resolve %s", endpoint)
	case isDialError(err):
		e.Message = fmt.Sprintf("connect to %s", endpoint)
	case errors.As(err, &dlErr) && dlErr.stage == stageHandshake && isConnDropped(err):
		// Not delivered: the connection never got past TLS.
		via := ""
		if dlErr.proxy != "" {
			via = " through proxy " + dlErr.proxy
		}
		e.Message = fmt.Sprintf("connection to %s%s was closed during the TLS handshake (a firewall or proxy that filters TLS?)", endpoint, via)
	case isConnDropped(err):
		// The request may have been delivered: at-least-once.
		e.Message = fmt.Sprintf("connection to %s lost before the reply", endpoint)
	default:
		e.Message = fmt.Sprintf("request to %s failed", endpoint)
	}
	return e
}

func isAuthAlert(err error) bool {
	a, ok := remoteAlert(err)
	return ok && authAlerts[a]
}

func isDialError(err error) bool {
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "dial"
}

// isConnDropped reports whether err says the peer closed or reset the
// connection, which on a reused keep-alive connection is the classic race
// with the server's idle timeout.
func isConnDropped(err error) bool {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, net.ErrClosed):
		return true
	}
	// net/http's errServerClosedIdle is unexported.
	return strings.Contains(err.Error(), "server closed idle connection")
}
