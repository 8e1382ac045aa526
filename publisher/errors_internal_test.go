package publisher

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeAlert has the shape of crypto/tls's unexported alert type.
type fakeAlert uint8

func (a fakeAlert) Error() string { return fmt.Sprintf("tls: alert(%d)", uint8(a)) }

func TestClassifyNetError(t *testing.T) {
	live := context.Background()
	expired, cancel := context.WithTimeout(live, -time.Second)
	defer cancel()
	cancelled, cancel2 := context.WithCancel(live)
	cancel2()
	wrap := func(err error) error { return &url.Error{Op: "Post", URL: "https://h/topics/t", Err: err} }
	tests := []struct {
		name            string
		parent, attempt context.Context
		err             error
		wantKind        Kind
		wantMsg         string
	}{
		{"refused", live, live, wrap(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), Retry, "connect to h:1"},
		{"dns", live, live, wrap(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "h"}}), Retry, "resolve h:1"},
		{"eof", live, live, wrap(io.EOF), Retry, "lost before the reply"},
		{"reset", live, live, wrap(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), Retry, "lost before the reply"},
		{"timeout", live, expired, wrap(context.DeadlineExceeded), Retry, "no reply from h:1 within 1s"},
		{"cancelled", cancelled, cancelled, wrap(context.Canceled), Retry, "cancelled"},
		{"unknown authority", live, live, wrap(x509.UnknownAuthorityError{}), Auth, "not trusted"},
		{"host name", live, live, wrap(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "h"}), Auth, "does not match the host name"},
		{"expired", live, live, wrap(x509.CertificateInvalidError{Reason: x509.Expired}), Auth, "clock"},
		{"bad certificate alert", live, live, wrap(&net.OpError{Op: "remote error", Err: fakeAlert(42)}), Auth, "refused the TLS handshake"},
		{"unknown ca alert", live, live, wrap(&net.OpError{Op: "remote error", Err: fakeAlert(48)}), Auth, "refused the TLS handshake"},
		{"internal error alert", live, live, wrap(&net.OpError{Op: "remote error", Err: fakeAlert(80)}), Retry, "request to h:1 failed"},
		{"other", live, live, wrap(errors.New("boom")), Retry, "request to h:1 failed: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := classifyNetError("t", "h:1", time.Second, tt.parent, tt.attempt, tt.err)
			if e.Kind != tt.wantKind {
				t.Errorf("kind %v, want %v", e.Kind, tt.wantKind)
			}
			if !strings.Contains(e.Error(), tt.wantMsg) {
				t.Errorf("%q does not contain %q", e.Error(), tt.wantMsg)
			}
			if strings.Contains(e.Error(), "https://") {
				t.Errorf("%q repeats the URL", e.Error())
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Kind: Auth, Topic: "sensors/pi/x", Status: 403, ErrorType: "ForbiddenException", Message: "Missing Authentication Token", TraceID: "abc"},
			"publish sensors/pi/x: 403 ForbiddenException: Missing Authentication Token (traceId abc); on port 443 the client must offer the ALPN name x-amzn-http-ca (alpn on), or use port 8443"},
		{&Error{Kind: Auth, Topic: "t", Status: 403, ErrorType: "ForbiddenException", Message: "Forbidden"},
			"publish t: 403 ForbiddenException: Forbidden; check that the certificate's IoT policy allows iot:Publish on this topic; over HTTPS there is no client id, so ${iot:ClientId} and ${iot:Connection.Thing.*} never match"},
		{&Error{Kind: Retry, Topic: "t", Status: 503},
			"publish t: 503 Service Unavailable"},
		{&Error{Kind: Retry, Topic: "t", Status: 429, ErrorType: "ThrottlingException", Message: "Rate exceeded", TraceID: "x"},
			"publish t: 429 ThrottlingException: Rate exceeded (traceId x)"},
		{&Error{Kind: Permanent, Topic: "a/+", Err: errors.New("invalid topic: wildcard")},
			"publish a/+: invalid topic: wildcard"},
		{&Error{Kind: Retry, Topic: "t", Message: "connect to h:1", Err: syscall.ECONNREFUSED},
			"publish t: connect to h:1: connection refused"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

func TestKindOf(t *testing.T) {
	perm := &Error{Kind: Permanent}
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"nil", nil, 0},
		{"plain error", errors.New("x"), Retry},
		{"direct", perm, Permanent},
		{"wrapped", fmt.Errorf("ctx: %w", perm), Permanent},
		{"auth", &Error{Kind: Auth}, Auth},
	}
	for _, tt := range tests {
		if got := KindOf(tt.err); got != tt.want {
			t.Errorf("%s: KindOf = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !errors.Is(&Error{Err: io.EOF}, io.EOF) {
		t.Error("Error does not unwrap")
	}
}

func TestBackoffDelay(t *testing.T) {
	fixed := func(r float64) func() float64 { return func() float64 { return r } }
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		want    time.Duration
	}{
		{"no jitter first", Backoff{Min: time.Second, Max: time.Minute, Factor: 2}, 1, time.Second},
		{"no jitter third", Backoff{Min: time.Second, Max: time.Minute, Factor: 2}, 3, 4 * time.Second},
		{"capped", Backoff{Min: time.Second, Max: time.Minute, Factor: 2}, 10, time.Minute},
		{"huge attempt capped", Backoff{Min: time.Second, Max: time.Minute, Factor: 2}, 1 << 20, time.Minute},
		{"attempt 0 is 1", Backoff{Min: time.Second, Max: time.Minute, Factor: 2}, 0, time.Second},
		{"defaults", Backoff{}, 2, 2 * time.Second},
		{"factor 3", Backoff{Min: time.Second, Max: time.Hour, Factor: 3}, 3, 9 * time.Second},
		{"full jitter low", Backoff{Min: time.Second, Max: time.Minute, Factor: 2, Jitter: 1, Rand: fixed(0)}, 3, 0},
		{"full jitter mid", Backoff{Min: time.Second, Max: time.Minute, Factor: 2, Jitter: 1, Rand: fixed(0.5)}, 3, 2 * time.Second},
		{"equal jitter low", Backoff{Min: time.Second, Max: time.Minute, Factor: 2, Jitter: 0.5, Rand: fixed(0)}, 3, 2 * time.Second},
		{"equal jitter high", Backoff{Min: time.Second, Max: time.Minute, Factor: 2, Jitter: 0.5, Rand: fixed(1)}, 3, 4 * time.Second},
		{"jitter clamped", Backoff{Min: time.Second, Max: time.Minute, Factor: 2, Jitter: 7, Rand: fixed(0.25)}, 1, 250 * time.Millisecond},
		{"rand clamped", Backoff{Min: time.Second, Max: time.Minute, Factor: 2, Jitter: 1, Rand: fixed(9)}, 1, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Delay(tt.attempt); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

// With the real random source, every delay stays within its bounds.
func TestBackoffDelayBounds(t *testing.T) {
	for _, b := range []Backoff{DefaultBackoff(), {Min: 100 * time.Millisecond, Max: 10 * time.Second, Factor: 1.5, Jitter: 0.5}} {
		for attempt := 1; attempt <= 30; attempt++ {
			ceil := min(time.Duration(float64(b.Min)*math.Pow(b.Factor, float64(attempt-1))), b.Max)
			floor := time.Duration(float64(ceil) * (1 - b.Jitter))
			for range 100 {
				if d := b.Delay(attempt); d < floor || d > ceil {
					t.Fatalf("%+v: Delay(%d) = %v, outside [%v, %v]", b, attempt, d, floor, ceil)
				}
			}
		}
	}
}
