package main

// One measured run of one client (the agent, Telegraf or the article's
// loop) in one scenario.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// clientProc is a client's process while it is measured.
type clientProc struct {
	ctx     context.Context
	name    string
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	exited  chan error
	stopped bool
	col     *collector
	flush   time.Duration
}

// clientCommand is the command line of client for scenario sc, talking to
// the relay on port.
func clientCommand(o options, sc scenario, client, dir, port string, pki *iotemu.PKI) (*exec.Cmd, error) {
	switch client {
	case "agent":
		cfg := filepath.Join(dir, "agent.yaml")
		if err := os.WriteFile(cfg, []byte(agentConfig(sc, dir, port, pki)), 0o644); err != nil {
			return nil, err
		}
		return exec.Command(o.bin, "run", "-config", cfg), nil
	case "telegraf":
		cfg := filepath.Join(dir, "telegraf.conf")
		if err := os.WriteFile(cfg, []byte(telegrafConfig(sc, port, pki)), 0o644); err != nil {
			return nil, err
		}
		return exec.Command(o.telegraf, "--config", cfg), nil
	case "article":
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		return exec.Command(self, "article-client", "-url", "https://127.0.0.1:"+port,
			"-ca", pki.Path(iotemu.CAFile), "-cert", pki.Path(iotemu.DeviceCertFile), "-key", pki.Path(iotemu.DeviceKeyFile),
			"-interval", sc.interval.String(), "-sensors", fmt.Sprint(sensors)), nil
	}
	return nil, fmt.Errorf("unknown client %q", client)
}

// startClient starts cmd in dir; the caller must kill it.
func startClient(ctx context.Context, cmd *exec.Cmd, dir, name string, col *collector, flush time.Duration) (*clientProc, error) {
	p := &clientProc{ctx: ctx, name: name, cmd: cmd, exited: make(chan error, 1), col: col, flush: flush}
	cmd.Stdout = io.Discard
	cmd.Stderr = &p.stderr
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	col.reset()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.exited <- cmd.Wait() }()
	return p, nil
}

// kill ends the process unless it has already ended.
func (p *clientProc) kill() {
	if !p.stopped {
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.stopped = true
	}
}

func (p *clientProc) failed(what string, err error) error {
	return fmt.Errorf("%s: %v; its output ends:\n%s", what, err, tail(p.stderr.String(), 15))
}

// wait lets d pass, failing if the client exits meanwhile.
func (p *clientProc) wait(d time.Duration) error {
	select {
	case err := <-p.exited:
		p.stopped = true
		return p.failed(p.name+" exited", err)
	case <-p.ctx.Done():
		return p.ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// The window starts and ends just after a message arrives (plus a moment
// for the rest of a flush's burst), so that it spans whole flush cycles:
// its CPU, bytes and messages then go with the readings those messages
// carry, whatever the flush interval and duration.
const settle = 300 * time.Millisecond

// alignNext waits for the first message after after, then settle.
func (p *clientProc) alignNext(after time.Time) (time.Time, error) {
	limit := 3*p.flush + 10*time.Second
	deadline := time.Now().Add(limit)
	for !p.col.arrivedAfter(after) {
		if time.Now().After(deadline) {
			return time.Time{}, p.failed(p.name+" published nothing", fmt.Errorf("no message arrived at the emulator within %s", limit))
		}
		if err := p.wait(5 * time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
	if err := p.wait(settle); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// mark is what is read at each end of the window.
type mark struct {
	at              time.Time
	proc            procSample
	up, down, conns int64
}

// markNow aligns to the next message and samples the process and relay.
func (p *clientProc) markNow(px *countingProxy) (mark, error) {
	at, err := p.alignNext(time.Now())
	if err != nil {
		return mark{}, err
	}
	s, err := sample(p.cmd.Process.Pid)
	if err != nil {
		return mark{}, p.failed("sample /proc", err)
	}
	return mark{at: at, proc: s, up: px.up.Load(), down: px.down.Load(), conns: px.connections.Load()}, nil
}

// stop ends the process: Go programs dump every goroutine on SIGQUIT,
// which the result then counts.
func (p *clientProc) stop(res *result, goroutines bool) {
	sig := syscall.SIGTERM
	if goroutines && p.name != "telegraf" {
		sig = syscall.SIGQUIT
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.stopped = true
	if sig == syscall.SIGQUIT {
		res.goroutines, res.goroutineTop = countGoroutines(p.stderr.String())
	}
}

// runOne measures client in scenario sc after a warm-up of at least a
// flush interval and a bit, so that the first connection (TLS handshake)
// and message fall before the window.
func runOne(ctx context.Context, o options, srv *iotemu.Server, col *collector, sc scenario, client string) (*result, error) {
	dir, err := os.MkdirTemp(o.dir, sc.key+"-"+client+"-")
	if err != nil {
		return nil, err
	}
	target := srv.PlainAddr() // Telegraf and the article cannot offer ALPN
	if client == "agent" {
		target = srv.ALPNAddr() // the agent's default on AWS: 443 with ALPN
	}
	px, err := startProxy(target)
	if err != nil {
		return nil, err
	}
	defer px.Close()
	_, port, _ := net.SplitHostPort(px.Addr())
	cmd, err := clientCommand(o, sc, client, dir, port, srv.PKI())
	if err != nil {
		return nil, err
	}
	p, err := startClient(ctx, cmd, dir, client, col, sc.flush)
	if err != nil {
		return nil, err
	}
	defer p.kill()
	if err := p.wait(max(o.warmup, sc.flush+2*time.Second)); err != nil {
		return nil, err
	}
	m0, err := p.markNow(px)
	if err != nil {
		return nil, err
	}
	if err := p.wait(o.duration - settle); err != nil {
		return nil, err
	}
	m1, err := p.markNow(px)
	if err != nil {
		return nil, err
	}
	res := &result{client: client, window: m1.at.Sub(m0.at)}
	res.readings, res.messages, res.metered, res.payload = col.window(m0.at, m1.at)
	if res.readings == 0 {
		return nil, p.failed(client+" published no reading in the window", errors.New("messages arrived but carried no reading the harness understands"))
	}
	res.cpuS = float64(m1.proc.ticks-m0.proc.ticks) / clockTicks()
	res.schedS = float64(m1.proc.schedNS-m0.proc.schedNS) / 1e9
	res.switches = m1.proc.switches - m0.proc.switches
	res.rssKiB, res.hwmKiB, res.threads = m1.proc.rssKiB, m1.proc.hwmKiB, m1.proc.threads
	res.up, res.down, res.conns = m1.up-m0.up, m1.down-m0.down, m1.conns-m0.conns
	p.stop(res, o.goroutines)
	return res, nil
}
