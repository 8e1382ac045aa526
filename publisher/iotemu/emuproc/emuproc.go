// Package emuproc runs the emulator in a child process for benchmarks, so
// that their CPU figures count the client's side only, behind a relay
// that counts the bytes on the wire. A benchmark's TestMain calls Serve
// when Env is set; the benchmark calls Start.
package emuproc

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// Env, set to a directory, makes a test binary serve the emulator (see
// Serve) instead of running its tests.
const Env = "SENSOR_AGENT_BENCH_EMULATOR_DIR"

// Serve runs the emulator with the PKI in dir, behind a byte-counting
// relay, until stdin closes. It prints the relay's address, then answers
// each line read from stdin with "up down body": the bytes relayed each
// way and the payload bytes accepted so far. It returns the exit code.
func Serve(dir string) int {
	if err := serve(dir); err != nil {
		fmt.Fprintln(os.Stderr, "emulator process:", err)
		return 1
	}
	return 0
}

func serve(dir string) error {
	pki, err := iotemu.NewPKI(dir)
	if err != nil {
		return err
	}
	var body atomic.Int64
	srv, err := iotemu.Start(iotemu.Options{PKI: pki, PlainAddr: iotemu.Off,
		OnMessage: func(m iotemu.Message) { body.Add(int64(len(m.Payload))) }})
	if err != nil {
		return err
	}
	defer srv.Close()
	r, err := startRelay(srv.ALPNAddr())
	if err != nil {
		return err
	}
	defer r.ln.Close()
	fmt.Println(r.ln.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Println(r.up.Load(), r.down.Load(), body.Load())
	}
	return nil
}

// relay is a TCP relay that counts the bytes each way as a NIC would see
// them, without TCP/IP headers: TLS records, handshakes and all. It
// counts as it copies: a kept-alive connection stays open while measured.
type relay struct {
	ln       net.Listener
	up, down atomic.Int64
}

func startRelay(target string) (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relay listen: %w", err)
	}
	r := &relay{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.pipe(c, target)
		}
	}()
	return r, nil
}

func (r *relay) pipe(c net.Conn, target string) {
	defer c.Close()
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	var wg sync.WaitGroup
	copyCount := func(dst, src net.Conn, n *atomic.Int64) {
		defer wg.Done()
		_, _ = io.Copy(counter{dst, n}, src)
		_ = dst.(*net.TCPConn).CloseWrite()
	}
	wg.Add(2)
	go copyCount(s, c, &r.up)
	go copyCount(c, s, &r.down)
	wg.Wait()
}

// counter counts what is written through it.
type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// Process is the emulator running in a child process.
type Process struct {
	Addr string // the relay's address, host:port
	PKI  *iotemu.PKI
	in   io.Writer
	out  *bufio.Reader
}

// Start runs the test binary again as the emulator (its TestMain must call
// Serve when Env is set); it ends with the benchmark.
func Start(b testing.TB) *Process {
	dir := b.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), Env+"="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		b.Fatalf("emulator process: %v", err)
	}
	pki, err := iotemu.NewPKI(dir)
	if err != nil {
		b.Fatal(err)
	}
	return &Process{Addr: strings.TrimSpace(line), PKI: pki, in: stdin, out: out}
}

// Port is the relay's port.
func (p *Process) Port() string {
	_, port, _ := strings.Cut(p.Addr, ":")
	return port
}

// Counts returns the bytes relayed each way so far and the payload bytes
// the emulator accepted.
func (p *Process) Counts(b testing.TB) (up, down, body int64) {
	fmt.Fprintln(p.in)
	line, err := p.out.ReadString('\n')
	if err != nil {
		b.Fatalf("emulator process: %v", err)
	}
	if _, err := fmt.Sscan(line, &up, &down, &body); err != nil {
		b.Fatalf("emulator process counts %q: %v", line, err)
	}
	return up, down, body
}

// CPUTime is the CPU this process has used, user and system: what a
// benchmark charges to the client side.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
