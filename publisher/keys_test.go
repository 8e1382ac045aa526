package publisher

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logRecorder is a slog.Handler that keeps "LEVEL message key=value..."
// lines.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, b.String())
	return nil
}

// take returns the lines logged since the last take.
func (r *logRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lines
	r.lines = nil
	return l
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newPair returns a self-signed certificate and key in PEM.
func newPair(t *testing.T, cn string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
}

// replace writes data to path through a rename, as rotation tools do.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type sourceFixture struct {
	s          *certSource
	clock      *fakeClock
	logs       *logRecorder
	cert, key  string
	closedIdle int
}

// newSource starts a certSource on a pair valid from notBefore to notAfter,
// without the polling goroutine: tests call check themselves.
func newSource(t *testing.T, start, notBefore, notAfter time.Time) *sourceFixture {
	t.Helper()
	dir := t.TempDir()
	f := &sourceFixture{clock: &fakeClock{t: start}, logs: &logRecorder{},
		cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	c, k := newPair(t, "device-a", notBefore, notAfter)
	replace(t, f.cert, c)
	replace(t, f.key, k)
	s, err := newCertSourceClock(Config{CertFile: f.cert, KeyFile: f.key, Timeout: 10 * time.Second},
		slog.New(f.logs), f.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	s.closeIdle = func() { f.closedIdle++ } // called from check, on the test goroutine
	f.s = s
	return f
}

func (f *sourceFixture) cn() string { return f.s.current().Leaf.Subject.CommonName }

// wantLogs checks the lines logged since the last call: one per pattern,
// in order, each containing every ;-separated part of its pattern.
func wantLogs(t *testing.T, logs *logRecorder, patterns ...string) {
	t.Helper()
	got := logs.take()
	if len(got) != len(patterns) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(got), len(patterns), strings.Join(got, "\n"))
	}
	for i, p := range patterns {
		for part := range strings.SplitSeq(p, ";") {
			if !strings.Contains(got[i], part) {
				t.Errorf("line %d %q lacks %q", i, got[i], part)
			}
		}
	}
}

func TestCertExpiryLogging(t *testing.T) {
	const day = 24 * time.Hour
	notAfter := epoch.Add(40 * day)
	f := newSource(t, epoch, epoch.Add(-time.Hour), notAfter)
	wantLogs(t, f.logs, "INFO client certificate;subject=device-a;days_left=40;certificate_id=")

	steps := []struct {
		at   time.Time
		want []string
	}{
		{epoch.Add(day), nil},
		{notAfter.Add(-29 * day), []string{"WARN client certificate expires soon;days_left=29"}},
		{notAfter.Add(-29*day + time.Hour), nil},                                                 // not again within a day
		{notAfter.Add(-29*day + 23*time.Hour), nil},                                              // still not
		{notAfter.Add(-28 * day), []string{"WARN client certificate expires soon;days_left=28"}}, // daily
		{notAfter.Add(-28*day + 5*time.Hour), nil},
		{notAfter.Add(time.Minute), []string{"ERROR client certificate has expired;days_left=-1"}},
		{notAfter.Add(time.Hour), nil},
		{notAfter.Add(day + time.Minute), []string{"ERROR client certificate has expired;days_left=-2"}},
		// The clock was wrong: a step back into the validity period.
		{epoch.Add(2 * day), []string{"INFO client certificate is valid;days_left=38"}},
		// And a step back before it, as on a Pi booting without RTC.
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), []string{"WARN client certificate is not valid yet"}},
		{time.Date(1970, 1, 3, 0, 0, 0, 0, time.UTC), nil},
	}
	for i, st := range steps {
		f.clock.set(st.at)
		if changed, err := f.s.check(); changed || err != nil {
			t.Fatalf("step %d: check = %v, %v with unchanged files", i, changed, err)
		}
		t.Logf("step %d at %s", i, st.at)
		wantLogs(t, f.logs, st.want...)
	}
}

func TestCertExpiryAtStart(t *testing.T) {
	tests := []struct {
		name                string
		notBefore, notAfter time.Time
		want                string
	}{
		{"expires in 10 days", epoch.Add(-time.Hour), epoch.Add(10*24*time.Hour + time.Minute), "WARN client certificate expires soon;days_left=10"},
		{"expired", epoch.Add(-48 * time.Hour), epoch.Add(-time.Hour), "ERROR client certificate has expired;days_left=-1"},
		{"not yet valid", epoch.Add(time.Hour), epoch.Add(48 * time.Hour), "WARN client certificate is not valid yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSource(t, epoch, tt.notBefore, tt.notAfter)
			wantLogs(t, f.logs, "INFO client certificate;days_left=", tt.want)
		})
	}
}

func TestCertSourceReload(t *testing.T) {
	f := newSource(t, epoch, epoch.Add(-time.Hour), epoch.Add(365*24*time.Hour))
	f.logs.take()
	certB, keyB := newPair(t, "device-b", epoch.Add(-time.Hour), epoch.Add(20*24*time.Hour))
	oldCert, _ := os.ReadFile(f.cert)

	check := func(step string, wantChanged bool, wantErr string) {
		t.Helper()
		changed, err := f.s.check()
		if changed != wantChanged {
			t.Errorf("%s: changed = %v, want %v", step, changed, wantChanged)
		}
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", step, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%s: error %v, want one containing %q", step, err, wantErr)
		}
	}

	// Same content, new version (touched, or rewritten): no change.
	future := epoch.Add(time.Hour)
	if err := os.Chtimes(f.cert, future, future); err != nil {
		t.Fatal(err)
	}
	replace(t, f.cert, oldCert)
	check("touched", false, "")
	wantLogs(t, f.logs)

	// The certificate replaced first: kept the old pair, said once.
	replace(t, f.cert, certB)
	check("cert replaced", false, "does not match")
	check("cert replaced, again", false, "does not match")
	wantLogs(t, f.logs, "WARN client certificate files changed but cannot be used;does not match")
	if f.cn() != "device-a" || f.closedIdle != 0 {
		t.Fatalf("half-rotated pair: presenting %s, idle closed %d times", f.cn(), f.closedIdle)
	}

	// The key being written (truncated): another problem, said once.
	if err := os.WriteFile(f.key, keyB[:40], 0o600); err != nil {
		t.Fatal(err)
	}
	check("key half-written", false, "client key")
	wantLogs(t, f.logs, "WARN client certificate files changed but cannot be used;client key")

	// A new connection does not look at the files within a second of the
	// last look; after that it does.
	replace(t, f.key, keyB)
	if f.s.get(nil); f.cn() != "device-a" {
		t.Fatalf("handshake within a second of the last check got %s", f.cn())
	}
	f.clock.add(certHandshakeCheck)
	cert, _ := f.s.get(nil)
	if cert.Leaf.Subject.CommonName != "device-b" || f.cn() != "device-b" {
		t.Fatalf("handshake after the key arrived got %s", cert.Leaf.Subject.CommonName)
	}
	wantLogs(t, f.logs, "INFO client certificate reloaded;subject=device-b;days_left=19;previous_certificate_id=",
		"WARN client certificate expires soon;days_left=19")
	if f.closedIdle != 1 {
		t.Fatalf("idle connections closed %d times at the switch, want 1", f.closedIdle)
	}

	// Idle connections keep being closed for staleFor: one in flight at
	// the switch, made with device-a, may come back to the pool later.
	switched := f.clock.now()
	f.clock.set(switched.Add(f.s.staleFor - time.Second))
	check("in the stale window", false, "")
	if f.closedIdle != 2 {
		t.Fatalf("idle connections closed %d times in the stale window, want 2", f.closedIdle)
	}
	f.clock.set(switched.Add(f.s.staleFor))
	check("after the stale window", false, "")
	if f.closedIdle != 2 {
		t.Fatalf("idle connections closed after the stale window")
	}

	// Files removed during a rotation: the pair in use stays.
	if err := os.Remove(f.cert); err != nil {
		t.Fatal(err)
	}
	check("cert removed", false, "no such file")
	wantLogs(t, f.logs, "WARN client certificate files changed but cannot be used;no such file")
	replace(t, f.cert, certB)
	check("cert restored", false, "")
	wantLogs(t, f.logs, "INFO client certificate files are usable again")
	if f.cn() != "device-b" || f.closedIdle != 2 {
		t.Fatalf("after restoring the same files: presenting %s, idle closed %d times", f.cn(), f.closedIdle)
	}
}

func TestCertSourceCloseStopsPolling(t *testing.T) {
	f := newSource(t, epoch, epoch.Add(-time.Hour), epoch.Add(365*24*time.Hour))
	f.s.pollEvery = time.Millisecond
	f.s.watch(func() {})
	f.s.close()
	f.s.close() // again: no-op
	var nilSource *certSource
	nilSource.close()
}
