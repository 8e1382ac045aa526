//go:build linux

package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// countingProxy is a TCP relay in front of the emulator that counts the
// bytes each way: TLS records, handshakes and all, as a NIC would see them
// (without TCP/IP headers).
type countingProxy struct {
	ln          net.Listener
	target      string
	up, down    atomic.Int64 // client→server, server→client
	connections atomic.Int64
	wg          sync.WaitGroup
}

func startProxy(target string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	return p, nil
}

func (p *countingProxy) Addr() string { return p.ln.Addr().String() }

func (p *countingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.connections.Add(1)
		p.wg.Go(func() { p.relay(c) })
	}
}

func (p *countingProxy) relay(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn, n *atomic.Int64) {
		_, _ = io.Copy(&counter{dst, n}, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(s, c, &p.up)
	go pipe(c, s, &p.down)
	<-done
	<-done
}

// Close stops accepting; relays end when their connections close.
func (p *countingProxy) Close() { p.ln.Close() }

type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}
