// Package proxytest runs HTTP proxies on loopback for tests, in the manner
// of net/http/httptest: squid with Basic authentication and tinyproxy from
// Debian, a programmable CONNECT proxy, and a TLS-inspecting man in the
// middle. Each is stopped by t.Cleanup.
//
// The real proxies need their Debian packages (squid, tinyproxy): when a
// program is missing the test fails under CI=true, where CI must install
// it, and is skipped elsewhere.
package proxytest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NeedTool finds a program, also in /usr/sbin and /usr/lib/squid. Missing,
// it fails the test under CI=true, where CI must install the Debian package
// pkg, and skips it elsewhere.
func NeedTool(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/lib/squid"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found: install the Debian package %s", name, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI must)")
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Buffer is a bytes.Buffer safe for concurrent writers and readers, for
// capturing a process's output or a logger's lines in tests.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runProxy starts a proxy in the foreground and returns once it accepts
// connections on addr. It is stopped (SIGTERM, then SIGKILL) at cleanup;
// its output is logged if the test failed.
func runProxy(t testing.TB, addr, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out := &Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), out)
		}
	})
	waitListening(t, addr, name, done, out.String, &waitErr)
}

// waitListening polls addr until it accepts a connection: a bounded retry
// loop waiting for an external process, which gives no other sign of
// readiness. exited, when closed, means the process is gone, with
// *exitErr; output is what it printed.
func waitListening(t testing.TB, addr, name string, exited <-chan struct{}, output func() string, exitErr *error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept connections on %s after 30s: %v\n%s", name, addr, err, output())
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before listening on %s: %v\n%s", name, addr, *exitErr, output())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
