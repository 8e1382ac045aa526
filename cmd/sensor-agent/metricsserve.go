package main

// The HTTP listener of `http.listen`: the live page (page.go), /metrics
// (metrics.go) and /healthz.
// Like the status socket it listens on the first config's address and is
// handed each agent a reload makes; nothing runs between requests.

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/agent/history"
)

// httpServer serves the agent running now.
type httpServer struct {
	agentServer
	listen string         // as configured, to tell a reload that changes it
	addr   string         // as bound (port 0 becomes the port chosen)
	hist   *history.Store // the live page's charts; outlives reloads
}

// listenHTTP listens on addr (host:port, validated by the config); the
// page charts what hist keeps.
func listenHTTP(addr string, hist *history.Store, log *slog.Logger) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", addr, err)
	}
	s := &httpServer{listen: addr, addr: ln.Addr().String(), hist: hist}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", s.page)
	mux.HandleFunc("GET /api/state", s.state)
	mux.HandleFunc("GET /api/history", s.history)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /healthz", s.healthz)
	s.serve(ln, mux, 10*time.Second, log, "http listener stopped", "addr", s.addr)
	return s, nil
}

// set is agentServer's, on a listener that may be off (nil).
func (s *httpServer) set(a *agent.Agent) {
	if s != nil {
		s.agentServer.set(a)
	}
}

// close is agentServer's, on a listener that may be off (nil).
func (s *httpServer) close() {
	if s != nil {
		s.agentServer.close()
	}
}

func (s *httpServer) metrics(w http.ResponseWriter, _ *http.Request) {
	var in metricsInput
	if !s.with(func(a *agent.Agent) {
		in = metricsInput{Version: buildVersion(), Snap: a.Snapshot(), Stats: a.Stats(), Publish: a.PublishMetrics()}
	}) {
		reloading(w)
		return
	}
	var b bytes.Buffer
	writeMetrics(&b, in)
	w.Header().Set("Content-Type", metricsContentType)
	_, _ = w.Write(b.Bytes())
}

// healthz answers 200 "ok", or 503 with the problems, one per line.
func (s *httpServer) healthz(w http.ResponseWriter, _ *http.Request) {
	var problems []string
	running := s.with(func(a *agent.Agent) {
		snap := a.Snapshot()
		problems = snap.Problems()
	})
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case !running:
		reloading(w)
	case len(problems) > 0:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(strings.Join(problems, "\n") + "\n"))
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	}
}

// serveHTTP has the http listener report on a, listening first if it
// does not yet. A reload does not move a listener; one that cannot start
// is logged, and the agent runs without.
func (s *service) serveHTTP(a *agent.Agent, cfg *config.Config) {
	log := s.opts.Logger
	switch {
	case s.http != nil:
		if cfg.HTTP.Listen != s.http.listen {
			log.Warn("http.listen changed: the listener stays where it is until the service restarts",
				"listening", s.http.addr, "configured", cfg.HTTP.Listen)
		}
	case cfg.HTTP.Listen != "":
		s.http, _ = startHTTP(cfg, a, s.opts.History, log)
		return
	}
	s.http.set(a)
}

// startHTTP listens on cfg's http.listen with a to report on, then says
// so (a test or a user acting on the line finds the agent there); a
// listener that cannot start is logged and returned as an error: the
// agent runs without.
func startHTTP(cfg *config.Config, a *agent.Agent, hist *history.Store, log *slog.Logger) (*httpServer, error) {
	s, err := listenHTTP(cfg.HTTP.Listen, hist, log)
	if err != nil {
		log.Warn("the live page, /metrics and /healthz will not be served", "err", err)
		return nil, err
	}
	s.set(a)
	log.Info("serving the live page, /metrics and /healthz", "addr", s.addr, "page", "http://"+s.addr+"/")
	if !cfg.HTTP.Loopback() {
		log.Warn("http.listen is not a loopback address: the live page, /metrics and /healthz are reachable from the network, without authentication",
			"addr", s.addr)
	}
	return s, nil
}

// handOver has the status socket and the http listener report on a; nil
// while agents are swapped.
func (s *service) handOver(a *agent.Agent) {
	s.status.set(a)
	s.http.set(a)
	s.remote.set(a)
}

// closeListeners stops the status socket and the http listener; a second
// call does nothing.
func (s *service) closeListeners() {
	s.remote.stop()
	s.status.close()
	s.http.close()
}
