package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// rotatingPub is the real client; before its at-th publish it runs rotate.
type rotatingPub struct {
	c      *publisher.Client
	at     int
	rotate func()

	mu sync.Mutex
	n  int
}

func (p *rotatingPub) Publish(ctx context.Context, topic string, body []byte) (publisher.Result, error) {
	p.mu.Lock()
	p.n++
	if p.n == p.at {
		p.rotate()
	}
	p.mu.Unlock()
	return p.c.Publish(ctx, topic, body)
}

// The certificate and key files are replaced under a running agent: every
// reading arrives, none is published twice or fails, and the messages from
// the rotation on come with the new certificate. The agent's client would
// notice the files within seconds; the test makes it look at once.
func TestCertificateRotationUnderRunningAgent(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	emu, err := iotemu.Start(iotemu.Options{PKI: pki, PlainAddr: iotemu.Off, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	newCert, newKey, err := pki.IssueDevice(t.TempDir(), "device-b")
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	install := func(src, dst string) {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+".tmp", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dst+".tmp", dst); err != nil {
			t.Fatal(err)
		}
	}
	install(pki.Path(iotemu.DeviceCertFile), cert)
	install(pki.Path(iotemu.DeviceKeyFile), key)
	_, port, _ := net.SplitHostPort(emu.ALPNAddr())
	portN, _ := strconv.Atoi(port)
	client, err := publisher.New(publisher.Config{Host: "127.0.0.1", Port: portN, ALPN: "on",
		CertFile: cert, KeyFile: key, CAFile: pki.Path(iotemu.CAFile), Timeout: 10 * time.Second, QoS: 1}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	const rotateAt = 3
	pub := &rotatingPub{c: client, at: rotateAt, rotate: func() {
		install(newCert, cert)
		install(newKey, key)
		if changed, err := client.ReloadCertificate(); !changed || err != nil {
			t.Errorf("ReloadCertificate = %v, %v", changed, err)
		}
	}}
	cfg := testConfig(t, "", "", `
  - {name: a, driver: sim, interval: 5ms, count: 40}
`)
	a := New(cfg, Options{Publisher: pub, Logger: logger, BootID: func() string { return "boot-1" },
		ExitWhenIdle: true, Clock: &flipClock{}})
	if err := a.Provision(); err != nil {
		t.Fatal(err)
	}
	defer a.Cleanup()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}

	msgs := emu.Messages()
	if len(msgs) <= rotateAt {
		t.Fatalf("%d messages: the rotation did not happen while publishing", len(msgs))
	}
	seen := map[uint64]int{}
	measured := 0
	for i, m := range msgs {
		want := "emulated-device"
		if i+1 >= rotateAt {
			want = "device-b"
		}
		if m.ClientCN != want {
			t.Errorf("message %d published as %q, want %q", i+1, m.ClientCN, want)
		}
		var env struct {
			Readings []struct {
				Seq  uint64
				Type string
			}
		}
		if err := json.Unmarshal(m.Payload, &env); err != nil {
			t.Fatal(err)
		}
		for _, r := range env.Readings {
			seen[r.Seq]++
			if r.Type == "" {
				measured++
			}
		}
	}
	if measured != 40 {
		t.Errorf("%d measurements arrived, want 40", measured)
	}
	for seq, n := range seen {
		if n != 1 {
			t.Errorf("seq %d arrived %d times", seq, n)
		}
	}
	if st := a.Stats(); st.PublishErrors != 0 {
		t.Errorf("%d publish errors during the rotation (last: %s)", st.PublishErrors, st.LastPublishError)
	}
}
