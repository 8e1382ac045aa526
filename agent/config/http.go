package config

import (
	"net"
	"strconv"
)

// HTTP is the optional listener for /metrics and /healthz.
type HTTP struct {
	// Listen is host:port, e.g. 127.0.0.1:9102; "" = off.
	Listen string `yaml:"listen"`
}

// Loopback says whether Listen only accepts connections from this
// machine: an empty host (":9102") means every interface, and a host name
// other than localhost may resolve to anything.
func (h HTTP) Loopback() bool {
	host, _, err := net.SplitHostPort(h.Listen)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) http(h *HTTP) {
	if h.Listen == "" {
		return
	}
	_, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		v.at("http.listen", "%q: want host:port, e.g. 127.0.0.1:9102 (%v)", h.Listen, err)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.at("http.listen", "%q: the port %q is not a number from 0 to 65535, e.g. 127.0.0.1:9102", h.Listen, port)
	}
}
