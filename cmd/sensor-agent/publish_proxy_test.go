package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// connectProxy is a minimal CONNECT proxy on loopback that records the
// Proxy-Authorization it was sent.
func connectProxy(t *testing.T) (addr string, auth func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		seen  []string
		wg    sync.WaitGroup
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				mu.Lock()
				seen = append(seen, req.Header.Get("Proxy-Authorization"))
				mu.Unlock()
				_, port, _ := net.SplitHostPort(req.Host)
				up, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
				if err != nil {
					fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestPublishCommandProxyFlag(t *testing.T) {
	pki, err := iotemu.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	emu, err := iotemu.Start(iotemu.Options{PKI: pki})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	_, port, _ := net.SplitHostPort(emu.ALPNAddr())
	proxyAddr, auth := connectProxy(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name, proxy, wantOut, wantErr string
	}{
		{"through the proxy", "http://pi:s3cret@" + proxyAddr, "published 9 bytes to sensors/pi/cli: 200 OK", ""},
		{"proxy unreachable", "http://pi:s3cret@" + closedAddr, "", "proxy http://pi:xxxxx@" + closedAddr + " (from endpoint.proxy) is unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := cmdPublish(t.Context(), []string{"-topic", "sensors/pi/cli", "-host", "localhost", "-port", port, "-alpn", "on",
				"-cert", pki.Path(iotemu.DeviceCertFile), "-key", pki.Path(iotemu.DeviceKeyFile), "-ca", pki.Path(iotemu.CAFile),
				"-retries", "1", "-proxy", tt.proxy, `{"via":1}`}, &stdout, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("%v\nstderr: %s", err, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.wantOut)
			}
			for _, out := range []string{stdout.String(), stderr.String(), fmt.Sprint(err)} {
				if strings.Contains(out, "s3cret") {
					t.Errorf("the proxy password is shown: %s", out)
				}
			}
		})
	}
	if got := auth(); len(got) != 1 || got[0] != "Basic cGk6czNjcmV0" {
		t.Errorf("the proxy saw Proxy-Authorization %q, want the credentials of -proxy", got)
	}
	hellos := emu.ClientHellos()
	if len(hellos) != 1 || len(hellos[0].ALPN) != 1 || hellos[0].ALPN[0] != publisher.ALPNProtocol {
		t.Errorf("emulator handshakes %+v: want one offering exactly %s", hellos, publisher.ALPNProtocol)
	}
}
