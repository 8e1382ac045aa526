package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
)

// The network steps: DNS, the proxy and its CONNECT tunnel, or TCP.

func (d *doctor) dns(ctx context.Context) bool {
	start := time.Now()
	p := d.prober
	ctx, cancel := context.WithTimeout(ctx, p.Timeout())
	defer cancel()
	host := d.pc.Host
	info, viaProxy := p.Proxy()
	if !viaProxy {
		if net.ParseIP(host) != nil {
			d.result(StepDNS, start, StatusPass, host+" is an address: nothing to resolve", "")
			return true
		}
		addrs, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			d.result(StepDNS, start, StatusFail, fmt.Sprintf("cannot resolve the endpoint %s: %v", host, err),
				"check endpoint.host (aws iot describe-endpoint --endpoint-type iot:Data-ATS) and the DNS servers (/etc/resolv.conf); if only a proxy may resolve outside names here, set endpoint.proxy")
			return false
		}
		d.result(StepDNS, start, StatusPass, fmt.Sprintf("%s → %s", host, strings.Join(addrs, ", ")), "")
		return true
	}
	var detail string
	if net.ParseIP(info.Host) != nil {
		detail = "proxy " + info.Host + " is an address"
	} else {
		addrs, err := net.DefaultResolver.LookupHost(ctx, info.Host)
		if err != nil {
			d.result(StepDNS, start, StatusFail, fmt.Sprintf("cannot resolve the proxy %s: %v", info.Host, err),
				fmt.Sprintf("check the proxy's host in %s and the DNS servers (/etc/resolv.conf); ask IT for the proxy's name or address", info.Source))
			return false
		}
		detail = fmt.Sprintf("proxy %s → %s", info.Host, strings.Join(addrs, ", "))
	}
	// The endpoint, for information only: the proxy resolves it.
	ectx, ecancel := context.WithTimeout(ctx, min(p.Timeout(), 2*time.Second))
	defer ecancel()
	if addrs, err := net.DefaultResolver.LookupHost(ectx, host); err == nil {
		detail += fmt.Sprintf("; endpoint %s → %s (not needed: the proxy resolves it)", host, strings.Join(addrs, ", "))
	} else {
		detail += fmt.Sprintf("; endpoint %s does not resolve here, which is fine: the proxy resolves it", host)
	}
	d.result(StepDNS, start, StatusPass, detail, "")
	return true
}

func directReason(info publisher.ProxyInfo, host string) string {
	switch info.Source {
	case "NO_PROXY", "no_proxy":
		return fmt.Sprintf("not used: %s matches %s (HTTPS_PROXY is set)", info.Source, host)
	case "loopback":
		return fmt.Sprintf("not used: %s is loopback, never proxied (HTTPS_PROXY is set)", host)
	}
	return "not used: endpoint.proxy is empty and HTTPS_PROXY is not set"
}

func (d *doctor) proxyAndTunnel(ctx context.Context, info publisher.ProxyInfo) net.Conn {
	p := d.prober
	name := fmt.Sprintf("proxy %s (from %s)", info.URL, info.Source)
	start := time.Now()
	conn, res, err := p.Tunnel(ctx)
	end := time.Now()
	var pe *publisher.ProxyError
	if err != nil && !errors.As(err, &pe) {
		pe = &publisher.ProxyError{Reason: publisher.ProxyUnreachable, Source: info.Source, Target: p.Endpoint(), Err: err}
	}
	if res.ProxyReached == 0 {
		detail, hint := proxyFailure(name, info, pe)
		d.add(Step{Step: StepProxy, Status: StatusFail, DurationMS: ms(end.Sub(start)), Detail: detail, Hint: hint})
		d.skip(StepTunnel, "needs the proxy (see proxy)")
		return nil
	}
	reached := fmt.Sprintf("%s: reachable at %s", name, net.JoinHostPort(info.Host, strconv.Itoa(info.Port)))
	if strings.HasPrefix(info.URL, "https://") {
		reached += ", TLS with the proxy ok"
	}
	d.add(Step{Step: StepProxy, Status: StatusPass, DurationMS: ms(res.ProxyReached), Detail: reached})
	tunnel := Step{Step: StepTunnel, DurationMS: ms(end.Sub(start) - res.ProxyReached)}
	if err != nil {
		tunnel.Status = StatusFail
		tunnel.Detail, tunnel.Hint = tunnelFailure(pe)
		if h := d.fallbackHint(); h != "" && (pe.Reason == publisher.ProxyForbidden || pe.Reason == publisher.ProxyUpstreamFailed) {
			tunnel.Hint += "; " + h
		}
		d.add(tunnel)
		return nil
	}
	tunnel.Status = StatusPass
	tunnel.Detail = fmt.Sprintf("CONNECT %s allowed", p.Endpoint())
	if info.User != "" {
		tunnel.Detail += fmt.Sprintf("; credentials of user %q accepted", info.User)
	} else {
		tunnel.Detail += "; no authentication asked"
	}
	d.add(tunnel)
	return conn
}

func proxyFailure(name string, info publisher.ProxyInfo, pe *publisher.ProxyError) (detail, hint string) {
	if pe.Reason == publisher.ProxyTLSFailed {
		return fmt.Sprintf("%s: TLS with the proxy failed: %v", name, pe.Err), pe.Hint()
	}
	where := net.JoinHostPort(info.Host, strconv.Itoa(info.Port))
	return fmt.Sprintf("%s is unreachable at %s: %v", name, where, pe.Err), pe.Hint()
}

// tunnelFailure words the proxy's answer to CONNECT; the hint is the
// publisher's, as in the agent's log.
func tunnelFailure(pe *publisher.ProxyError) (detail, hint string) {
	answer := pe.Answer()
	switch pe.Reason {
	case publisher.ProxyAuthRequired:
		detail = fmt.Sprintf("the proxy requires authentication for CONNECT %s (%s) and no credentials were sent", pe.Target, answer)
	case publisher.ProxyAuthRejected:
		detail = fmt.Sprintf("the proxy rejected the credentials of user %q for CONNECT %s (%s)", pe.User, pe.Target, answer)
	case publisher.ProxyForbidden:
		detail = fmt.Sprintf("the proxy forbids CONNECT to %s (%s)", pe.Target, answer)
	case publisher.ProxyUpstreamFailed:
		detail = fmt.Sprintf("the proxy cannot reach %s (%s)", pe.Target, answer)
	case publisher.ProxyRefused:
		detail = fmt.Sprintf("the proxy refused CONNECT to %s (%s)", pe.Target, answer)
	case publisher.ProxyProtocol:
		detail = fmt.Sprintf("the proxy did not answer CONNECT like an HTTP proxy: %v", pe.Err)
	default:
		detail = fmt.Sprintf("the proxy gave no answer to CONNECT %s: %v", pe.Target, pe.Err)
	}
	return detail, pe.Hint()
}

func (d *doctor) fallbackHint() string {
	fb := d.pc.FallbackPort
	if fb == 0 || d.prober.Port() == fb {
		return ""
	}
	return fmt.Sprintf("endpoint.fallback_port %d is set: the agent will try it; check it with sensor-agent doctor -port %d", fb, fb)
}

func (d *doctor) tcp(ctx context.Context) net.Conn {
	start := time.Now()
	p := d.prober
	conn, err := p.Dial(ctx)
	if err == nil {
		d.result(StepTCP, start, StatusPass, fmt.Sprintf("connected to %s (%s)", p.Endpoint(), conn.RemoteAddr()), "")
		return conn
	}
	port := strconv.Itoa(p.Port())
	allow := fmt.Sprintf("ask IT to allow outbound TCP port %s to %s, or for the proxy to use (endpoint.proxy)", port, d.pc.Host)
	var detail, hint string
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		detail = fmt.Sprintf("%s refused the connection: %v", p.Endpoint(), err)
		hint = "nothing listens there, or a firewall rejects it: check endpoint.host and endpoint.port; " + allow
	case publisher.IsTimeout(err):
		detail = fmt.Sprintf("no answer from %s within %s: %v", p.Endpoint(), p.Timeout(), err)
		hint = "a firewall drops outbound port " + port + ": " + allow
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		detail = fmt.Sprintf("no route to %s: %v", p.Endpoint(), err)
		hint = "check the device's network (default route, Wi-Fi, cable)"
	default:
		detail = fmt.Sprintf("cannot connect to %s: %v", p.Endpoint(), err)
		hint = allow
	}
	if h := d.fallbackHint(); h != "" {
		hint += "; " + h
	}
	d.result(StepTCP, start, StatusFail, detail, hint)
	return nil
}
