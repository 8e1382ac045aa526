package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
)

// agentServer is what the status socket and the http.listen listener
// share: an HTTP server about the agent running now. A reload hands it
// each new agent (set); between two agents it has none, and its handlers
// answer 503 (reloading).
type agentServer struct {
	srv  *http.Server
	done chan struct{} // Serve returned

	mu sync.Mutex
	a  *agent.Agent
}

// serve serves h on ln until close; writeTimeout 0 is none. Serve
// failing is logged as msg with attrs.
func (s *agentServer) serve(ln net.Listener, h http.Handler, writeTimeout time.Duration, log *slog.Logger, msg string, attrs ...any) {
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: writeTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn(msg, append(attrs, "err", err)...)
		}
	}()
}

// set hands the server the agent to report on; nil while agents are
// swapped (the next takes the previous one's storage during Provision).
// It waits for a request in progress.
func (s *agentServer) set(a *agent.Agent) {
	s.mu.Lock()
	s.a = a
	s.mu.Unlock()
}

// with calls fn with the agent, holding it there (a reload waits); false
// when there is none.
func (s *agentServer) with(fn func(a *agent.Agent)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.a == nil {
		return false
	}
	fn(s.a)
	return true
}

// close stops serving.
func (s *agentServer) close() {
	s.set(nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}

// reloading is the answer while agents are swapped.
func reloading(w http.ResponseWriter) {
	http.Error(w, "the agent is reloading its config", http.StatusServiceUnavailable)
}
