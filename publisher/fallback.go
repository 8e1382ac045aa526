package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Port fallback.
//
// Policy: requests (publishes and shadow requests) go to the active port, Config.Port at first. When an
// attempt finds the active port unreachable (connect refused or timed out,
// a proxy that forbids CONNECT to it or cannot reach it, a connection cut
// during the TLS handshake), the same publish is tried at once on the other
// port. A port that answers becomes the active one, and the switch is
// logged once (a warning when leaving Config.Port, info when coming back).
// While on the fallback port, the first publish after FallbackRecheck (10
// minutes) since Config.Port was last found unreachable tries Config.Port
// first, and stays there if it answers.

// sendFallback makes the request on the active port and, if that is
// unreachable, on the other one.
func (c *Client) sendFallback(ctx context.Context, cl *call) (sent, error) {
	first := c.firstPort()
	x, r, err := c.sendOn(ctx, first, cl)
	if r == reachConnected {
		c.settle(first, nil)
	}
	if r != reachUnreachable || ctx.Err() != nil {
		return x, err
	}
	other := c.cfg.FallbackPort
	if first != c.cfg.Port {
		other = c.cfg.Port
	} else {
		c.primaryUnreachable()
	}
	c.log.Debug("port unreachable, trying the other one", "port", first, "other", other, "err", err)
	x2, r2, err2 := c.sendOn(ctx, other, cl)
	if r2 == reachConnected {
		c.settle(other, err)
		return x2, err2
	}
	if other == c.cfg.Port {
		c.primaryUnreachable()
	}
	if first == c.cfg.Port {
		return x2, bothPortsFailed(cl, first, err, other, err2)
	}
	return x2, bothPortsFailed(cl, other, err2, first, err)
}

// portState is where the policy above stands: the active port and when
// Config.Port is tried again.
type portState struct {
	mu        sync.Mutex
	active    int              // 0 until the first switch: Config.Port
	recheckAt time.Time        // when to try Config.Port again while on the fallback
	now       func() time.Time // nil: time.Now
}

func (s *portState) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// firstPort picks the port to try first, claiming the recheck of
// Config.Port when it is due (one publish at a time makes it).
func (c *Client) firstPort() int {
	s := &c.ports
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == 0 || s.active == c.cfg.Port {
		return c.cfg.Port
	}
	if now := s.clock(); !now.Before(s.recheckAt) {
		s.recheckAt = now.Add(FallbackRecheck)
		return c.cfg.Port
	}
	return s.active
}

// primaryUnreachable postpones the next try of Config.Port.
func (c *Client) primaryUnreachable() {
	s := &c.ports
	s.mu.Lock()
	s.recheckAt = s.clock().Add(FallbackRecheck)
	s.mu.Unlock()
}

// settle makes port, which just answered, the active port.
func (c *Client) settle(port int, cause error) {
	s := &c.ports
	s.mu.Lock()
	prev := s.active
	if prev == 0 {
		prev = c.cfg.Port
	}
	if prev == port {
		s.mu.Unlock()
		return
	}
	s.active = port
	if port != c.cfg.Port {
		s.recheckAt = s.clock().Add(FallbackRecheck)
	}
	s.mu.Unlock()
	if port != c.cfg.Port {
		c.log.Warn(fmt.Sprintf("port %d is unreachable: publishing on fallback port %d until it is reachable again (tried every %s)",
			c.cfg.Port, port, FallbackRecheck),
			"endpoint", c.endpoint, "fallback", c.endpointOn(port), "alpn", len(c.dialer.routeFor(port).alpn) > 0, "err", cause)
		return
	}
	// A kept-alive connection to the fallback port is left to the idle
	// timeout: closing idle connections now would close the one to Port.
	c.log.Info(fmt.Sprintf("port %d is reachable again: leaving fallback port %d", port, prev), "endpoint", c.endpoint)
}

// bothPortsFailed reports the failures on both ports in one *Error: Retry
// if either may pass by itself.
func bothPortsFailed(cl *call, port int, err error, fallback int, ferr error) error {
	e1, ok1 := err.(*Error)
	e2, ok2 := ferr.(*Error)
	if !ok1 || !ok2 {
		return ferr
	}
	kind := e1.Kind
	if e2.Kind == Retry {
		kind = Retry
	}
	return &Error{
		Kind:   kind,
		Topic:  cl.topic,
		op:     cl.op,
		detail: fmt.Sprintf("port %d: %s; fallback port %d: %s", port, e1.body(), fallback, e2.body()),
		Err:    errors.Join(err, ferr),
	}
}

// dialReach judges a request that failed before it had a connection:
// was the port unreachable, so that the other port may get through?
func dialReach(parent, attempt context.Context, err error, progress *dialProgress) reach {
	if parent.Err() != nil {
		return reachUnknown
	}
	if pe, ok := errors.AsType[*ProxyError](err); ok {
		if pe.Reason == ProxyForbidden || pe.Reason == ProxyUpstreamFailed {
			return reachUnreachable
		}
		return reachUnknown
	}
	if de, ok := errors.AsType[*dialError](err); ok {
		switch {
		case de.stage == stageDial:
			if _, dns := errors.AsType[*net.DNSError](err); dns {
				return reachUnknown // the other port has the same name
			}
			return reachUnreachable
		case de.stage == stageHandshake && (isConnDropped(de.err) || IsTimeout(de.err)):
			return reachUnreachable
		}
		return reachUnknown
	}
	if attempt.Err() != nil {
		switch st, _, _ := progress.get(); st {
		case stageDial, stageConnect, stageHandshake:
			return reachUnreachable
		}
	}
	return reachUnknown
}

// route is how the client reaches one port of the endpoint.
type route struct {
	proxy  *url.URL // nil: direct
	source string   // "endpoint.proxy", "HTTPS_PROXY", ...
	alpn   []string // the ALPN offer on that port
}

// resolveRoutes decides, once, how each port of the endpoint is reached.
func resolveRoutes(cfg Config, primaryALPN bool, getenv func(string) string, logger *slog.Logger) (map[int]route, error) {
	routes := map[int]route{}
	ports := []int{cfg.Port}
	if cfg.FallbackPort != 0 {
		ports = append(ports, cfg.FallbackPort)
	}
	fixed, err := ParseProxyURL(cfg.Proxy)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	for i, port := range ports {
		rt := route{}
		switch {
		case i == 0 && primaryALPN, i > 0 && port == 443:
			// The fallback port goes without ALPN (8443), unless it is 443.
			rt.alpn = []string{ALPNProtocol}
		}
		if fixed != nil {
			rt.proxy, rt.source = fixed, "endpoint.proxy"
		} else {
			px, source, err := ProxyFromEnvironment(getenv, cfg.Host, port)
			if err != nil {
				return nil, fmt.Errorf("publisher: %w", err)
			}
			if px == nil && source != "" {
				logger.Debug("proxy environment does not apply to the endpoint: connecting directly",
					"endpoint", net.JoinHostPort(cfg.Host, strconv.Itoa(port)), "decided_by", source)
			}
			rt.proxy, rt.source = px, source
		}
		if rt.proxy != nil && (i == 0 || routes[cfg.Port].proxy == nil) {
			logger.Info("connecting through proxy", "proxy", rt.proxy.Redacted(), "source", rt.source,
				"endpoint", net.JoinHostPort(cfg.Host, strconv.Itoa(port)))
		}
		routes[port] = rt
	}
	return routes, nil
}
