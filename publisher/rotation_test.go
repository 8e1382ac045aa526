package publisher_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// rotation is a client whose certificate and key files, in a directory of
// their own, start as the emulator's device pair (CN emulated-device).
type rotation struct {
	s         *iotemu.Server
	c         *publisher.Client
	cert, key string
}

func newRotation(t *testing.T, opts iotemu.Options) *rotation {
	t.Helper()
	s := startEmu(t, opts)
	dir := t.TempDir()
	r := &rotation{s: s, cert: filepath.Join(dir, "device.pem.crt"), key: filepath.Join(dir, "private.pem.key")}
	r.install(t, s.PKI().Path(iotemu.DeviceCertFile), s.PKI().Path(iotemu.DeviceKeyFile))
	cfg := clientConfig(t, s, iotemu.ListenerALPN, "on")
	cfg.CertFile, cfg.KeyFile = r.cert, r.key
	r.c = newClient(t, cfg)
	return r
}

// install replaces the client's files with copies of certFile and keyFile
// ("" leaves that file as it is), each through a rename.
func (r *rotation) install(t *testing.T, certFile, keyFile string) {
	t.Helper()
	for _, f := range []struct{ src, dst string }{{certFile, r.cert}, {keyFile, r.key}} {
		if f.src == "" {
			continue
		}
		data, err := os.ReadFile(f.src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.dst+".new", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.dst+".new", f.dst); err != nil {
			t.Fatal(err)
		}
	}
}

// publish publishes and returns the CN the emulator saw.
func (r *rotation) publish(t *testing.T) string {
	t.Helper()
	n := len(r.s.Messages())
	if _, err := r.c.Publish(t.Context(), "sensors/pi/rot", []byte(`{}`)); err != nil {
		t.Fatalf("publish: %v", err)
	}
	msgs := r.s.Messages()
	if len(msgs) != n+1 {
		t.Fatalf("emulator has %d messages, want %d", len(msgs), n+1)
	}
	return msgs[n].ClientCN
}

func (r *rotation) reload(t *testing.T, wantChanged bool, wantErr string) {
	t.Helper()
	changed, err := r.c.ReloadCertificate()
	checkErr(t, err, wantErr)
	if changed != wantChanged {
		t.Fatalf("ReloadCertificate changed = %v, want %v", changed, wantChanged)
	}
}

func issue(t *testing.T, s *iotemu.Server, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := s.PKI().IssueDevice(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestCertificateRotation(t *testing.T) {
	r := newRotation(t, iotemu.Options{})
	certB, keyB := issue(t, r.s, "device-b")
	if cn := r.publish(t); cn != "emulated-device" {
		t.Fatalf("first publish as %q", cn)
	}
	r.install(t, certB, keyB)
	r.reload(t, true, "")
	if cn := r.c.Certificate().Subject.CommonName; cn != "device-b" {
		t.Fatalf("Certificate() = %s after the rotation", cn)
	}
	// The kept-alive connection was made with the old certificate: it
	// must not be reused.
	if cn := r.publish(t); cn != "device-b" {
		t.Fatalf("publish after the rotation as %q, want device-b", cn)
	}
	if h := r.s.Handshakes(); h != 2 {
		t.Errorf("%d handshakes, want 2 (one per certificate)", h)
	}
	r.reload(t, false, "")
}

func TestCertificateRotationHalfDone(t *testing.T) {
	r := newRotation(t, iotemu.Options{})
	certB, keyB := issue(t, r.s, "device-b")
	r.publish(t)

	// The certificate arrives first: the old pair stays in use.
	r.install(t, certB, "")
	r.reload(t, false, "does not match certificate")
	if cn := r.publish(t); cn != "emulated-device" {
		t.Fatalf("publish with a half-rotated pair as %q", cn)
	}
	r.s.CloseIdle() // a new connection must still present the old pair
	if cn := r.publish(t); cn != "emulated-device" {
		t.Fatalf("publish on a new connection with a half-rotated pair as %q", cn)
	}
	r.reload(t, false, "does not match certificate")

	// Then the key.
	r.install(t, "", keyB)
	r.reload(t, true, "")
	if cn := r.publish(t); cn != "device-b" {
		t.Fatalf("publish after the key arrived as %q, want device-b", cn)
	}
}

// A pair the server does not trust cannot be told from a good one by the
// client: it is used, publishing fails with Auth (the agent keeps the data
// and backs off), and once good files are installed publishing resumes.
// The client does not fall back to the previous pair: the files are the
// truth, and a fallback would hide a broken rotation until the old
// certificate expires.
func TestCertificateRotationToUntrusted(t *testing.T) {
	r := newRotation(t, iotemu.Options{})
	certB, keyB := issue(t, r.s, "device-b")
	badCert, badKey, err := iotemu.NewUntrustedClient(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r.publish(t)
	r.install(t, badCert, badKey)
	r.reload(t, true, "")
	before := len(r.s.Messages())
	_, err = r.c.Publish(t.Context(), "sensors/pi/rot", []byte(`{}`))
	checkErr(t, err, "refused the TLS handshake")
	checkKind(t, err, publisher.Auth)
	if len(r.s.Messages()) != before {
		t.Fatal("the emulator accepted a message from an untrusted certificate")
	}
	r.install(t, certB, keyB)
	r.reload(t, true, "")
	if cn := r.publish(t); cn != "device-b" {
		t.Fatalf("publish after fixing the files as %q, want device-b", cn)
	}
}

// A rotation while a request is in flight: that request completes with the
// old certificate. net/http closes a connection that becomes idle after
// CloseIdleConnections, but only until the next request asks for one: with
// concurrent publishes the old connection can come back to the pool. The
// client therefore keeps closing idle connections at each look at the
// files (every few seconds) for a while after a switch.
func TestCertificateRotationDuringConcurrentRequests(t *testing.T) {
	type hook struct{ in, release chan struct{} }
	hooks := map[string]hook{
		"x": {make(chan struct{}), make(chan struct{})},
		"y": {make(chan struct{}), make(chan struct{})},
	}
	var rotateInX func()
	r := newRotation(t, iotemu.Options{OnMessage: func(m iotemu.Message) {
		h, ok := hooks[string(m.Payload)]
		if !ok {
			return
		}
		if string(m.Payload) == "x" {
			rotateInX()
		}
		close(h.in)
		<-h.release
	}})
	certB, keyB := issue(t, r.s, "device-b")
	rotateInX = func() {
		r.install(t, certB, keyB)
		if changed, err := r.c.ReloadCertificate(); !changed || err != nil {
			t.Errorf("ReloadCertificate in flight = %v, %v", changed, err)
		}
	}
	publish := func(body string) <-chan string {
		cn := make(chan string, 1)
		go func() {
			defer close(cn)
			if _, err := r.c.Publish(context.Background(), "sensors/pi/rot", []byte(body)); err != nil {
				t.Errorf("publish %s: %v", body, err)
				return
			}
			for _, m := range r.s.Messages() {
				if string(m.Payload) == body {
					cn <- m.ClientCN
				}
			}
		}()
		return cn
	}
	// x is in flight on a connection made with the old certificate when
	// the files change; y starts meanwhile, on a new connection.
	arrived := func(name string, done <-chan string) {
		select {
		case <-hooks[name].in:
		case <-done:
			t.Fatalf("publish %s ended before reaching the emulator", name)
		}
	}
	x := publish("x")
	arrived("x", x)
	y := publish("y")
	arrived("y", y)
	// x ends first: its connection goes idle (y's request reset the
	// transport's close-newly-idle flag); then y ends, and its connection
	// is closed as one too many idle.
	close(hooks["x"].release)
	if cn := <-x; cn != "emulated-device" {
		t.Fatalf("in-flight publish as %q", cn)
	}
	close(hooks["y"].release)
	if cn := <-y; cn != "device-b" {
		t.Fatalf("publish started after the rotation as %q", cn)
	}
	r.reload(t, false, "") // as the poll does a few seconds later
	if cn := r.publish(t); cn != "device-b" {
		t.Fatalf("publish after an in-flight rotation as %q, want device-b", cn)
	}
}

func TestIssueDeviceNeedsGeneratedPKI(t *testing.T) {
	dir := t.TempDir()
	if _, err := iotemu.NewPKI(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := iotemu.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = loaded.IssueDevice(t.TempDir(), "x")
	checkErr(t, err, "CA key")
}
