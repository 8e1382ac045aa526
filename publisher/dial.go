package publisher

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// stage is how far a connection attempt got.
type stage int

const (
	stageNone         stage = iota
	stageProxyConnect       // TCP (and TLS) to the proxy
	stageConnect            // CONNECT sent, waiting for the proxy's answer
	stageDial               // TCP to the endpoint, direct
	stageHandshake          // TLS with the endpoint
	stageDone               // connected
)

// dialError is a connection attempt that failed at a stage.
type dialError struct {
	stage stage
	addr  string // endpoint host:port
	proxy string // redacted proxy URL, "" when direct
	err   error
}

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dialProgress records how far the dials made for one request got, so that a
// request that times out can say where it was stuck. The request hands it
// down to the dialer as a context value.
type dialProgress struct {
	mu    sync.Mutex
	stage stage
	addr  string
	proxy string
	at    time.Time // when stage was entered (diagnose.go times the links)
}

type progressKey struct{}

func withProgress(ctx context.Context, p *dialProgress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

func (p *dialProgress) set(s stage, addr, proxy string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.stage, p.addr, p.proxy, p.at = s, addr, proxy, time.Now()
	p.mu.Unlock()
}

func (p *dialProgress) get() (stage, string, string) {
	if p == nil {
		return stageNone, "", ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stage, p.addr, p.proxy
}

// describe says what a stuck connection attempt was doing.
func (s stage) describe(addr, proxy string) string {
	switch s {
	case stageProxyConnect:
		return "connecting to proxy " + proxy
	case stageConnect:
		return fmt.Sprintf("waiting for proxy %s to open a tunnel to %s (CONNECT)", proxy, addr)
	case stageDial:
		return "connecting to " + addr
	case stageHandshake:
		if proxy != "" {
			return fmt.Sprintf("in the TLS handshake with %s through proxy %s", addr, proxy)
		}
		return "in the TLS handshake with " + addr
	}
	return ""
}

// endpointDialer makes the client's connections: TLS to the endpoint,
// direct or through a CONNECT tunnel.
type endpointDialer struct {
	timeout time.Duration
	tls     *tls.Config // the template: certificate, roots, SNI, ALPN of Port
	routes  map[int]route
	primary int // Config.Port
	log     *slog.Logger
}

// routeFor returns how port is reached; a port other than the configured
// two (not used) gets the primary's proxy without ALPN.
func (d *endpointDialer) routeFor(port int) route {
	if rt, ok := d.routes[port]; ok {
		return rt
	}
	rt := d.routes[d.primary]
	rt.alpn = nil
	return rt
}

// dialTLS makes a TLS connection to addr
// (host:port of the endpoint), direct or through the route's proxy.
func (d *endpointDialer) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(portStr)
	rt := d.routeFor(port)
	progress, _ := ctx.Value(progressKey{}).(*dialProgress)
	// A caller's context may have no deadline of its own. Give it a
	// little more than a request's, so a slow proxy is reported by the
	// request's deadline (which names the stage it was stuck in) rather
	// than by whichever of two equal timers fires first.
	ctx, cancel := context.WithTimeout(ctx, d.timeout+d.timeout/2)
	defer cancel()

	var conn net.Conn
	proxyName := ""
	if rt.proxy != nil {
		proxyName = rt.proxy.Redacted()
		conn, err = d.tunnel(ctx, rt, addr, progress)
	} else {
		progress.set(stageDial, addr, "")
		nd := net.Dialer{KeepAlive: 30 * time.Second}
		conn, err = nd.DialContext(ctx, network, addr)
		if err != nil {
			err = &dialError{stage: stageDial, addr: addr, err: err}
		}
	}
	if err != nil {
		return nil, err
	}
	progress.set(stageHandshake, addr, proxyName)
	tc := tls.Client(conn, d.tlsConfigFor(host, rt))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		if ie := inspectionFromHandshake(host, addr, proxyName, err); ie != nil {
			err = ie
		}
		return nil, &dialError{stage: stageHandshake, addr: addr, proxy: proxyName, err: err}
	}
	progress.set(stageDone, addr, proxyName)
	return tc, nil
}

// tlsConfigFor derives the handshake's configuration from the client's
// (certificate, roots, SNI, whatever callbacks it has), with the route's
// ALPN offer and, for AWS hosts, the check that the chain ends at Amazon.
func (d *endpointDialer) tlsConfigFor(host string, rt route) *tls.Config {
	cfg := d.tls.Clone()
	cfg.NextProtos = rt.alpn
	if isAmazonHost(host) {
		prev := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if prev != nil {
				if err := prev(cs); err != nil {
					return err
				}
			}
			return checkAmazonIssuer(host, cs)
		}
	}
	return cfg
}

// ctxErr prefers ctx's error to the I/O error it caused through a deadline.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && IsTimeout(err) {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// IsTimeout reports whether err is a timeout: a context deadline or a
// net.Error that says so.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
