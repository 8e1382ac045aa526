package config

import (
	"net"
	"strconv"
	"time"
)

// HTTP is the optional listener for the live page, /metrics and /healthz.
type HTTP struct {
	// Listen is host:port, e.g. 127.0.0.1:9102; "" = off.
	Listen string `yaml:"listen"`
	// History is how far back the live page's charts go, kept in memory.
	History Duration `yaml:"history"`
	// HistoryMaxBytes bounds that memory, all sensors together.
	HistoryMaxBytes Size `yaml:"history_max_bytes"`
}

// The history's defaults and bounds: an hour in 2 MiB keeps every reading
// of 10 sensors with 3 values at 1 Hz (12 bytes a point).
const (
	DefaultHistory         = time.Hour
	DefaultHistoryMaxBytes = 2 << 20
)

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
	if h.History < Duration(time.Minute) || h.History > Duration(24*time.Hour) {
		v.at("http.history", "%s: give from 1m to 24h (default 1h)", h.History)
	}
	if h.HistoryMaxBytes < 64<<10 || h.HistoryMaxBytes > 64<<20 {
		v.at("http.history_max_bytes", "%d bytes: give from 64KiB to 64MiB (default 2MiB); it is held in memory", h.HistoryMaxBytes)
	}
}
