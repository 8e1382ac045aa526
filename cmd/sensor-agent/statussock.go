package main

// The status socket: `run` answers `sensor-agent status` with the agent's
// Snapshot, as JSON over HTTP on a unix socket (GET /v1/status).
//
// Where: $RUNTIME_DIRECTORY/agent.sock under systemd (the unit's
// RuntimeDirectory=sensor-agent: /run/sensor-agent, mode 0750, removed
// when the service stops), else state_dir/agent.sock (state_dir at start:
// a reload does not move the socket). The socket is mode 0660 and has the
// service's group, so members of group sensor-agent and root may connect.

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
)

const (
	// socketName is the status socket's file name in its directory.
	socketName = "agent.sock"
	// defaultRuntimeDir is RuntimeDirectory= of the packaged unit.
	defaultRuntimeDir = "/run/sensor-agent"
	// maxSocketPath is the longest path a unix socket address holds
	// (sun_path is 108 bytes with the terminating NUL).
	maxSocketPath = 107
	// statusPath is the request `status` makes.
	statusPath = "/v1/status"
)

// runtimeDir is the directory systemd made for the service, "" when not
// under systemd. Several RuntimeDirectory= entries come joined by ':'.
func runtimeDir(getenv func(string) string) string {
	dir, _, _ := strings.Cut(getenv("RUNTIME_DIRECTORY"), ":")
	return dir
}

// serveSocketPath is where `run` listens: the runtime directory, else
// state_dir; one whose path is too long for a socket address is passed
// over, and an error names it when none fits.
func serveSocketPath(getenv func(string) string, stateDir string) (string, error) {
	var tooLong []string
	for _, dir := range []string{runtimeDir(getenv), stateDir} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, socketName)
		if len(p) <= maxSocketPath {
			return p, nil
		}
		tooLong = append(tooLong, p)
	}
	return "", fmt.Errorf("status socket %s: longer than %d bytes, the limit of a unix socket address: `status` cannot reach the agent; use a shorter state_dir",
		strings.Join(tooLong, ", "), maxSocketPath)
}

// statusReport is the answer on the socket: the agent's Snapshot and the
// process around it.
type statusReport struct {
	Version string    `json:"version"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"` // the process
	Socket  string    `json:"socket"`
	// State is "healthy", or "degraded" with the Problems.
	State    string   `json:"state"`
	Problems []string `json:"problems,omitempty"`
	agent.Snapshot
}

// statusServer serves the snapshot of the agent running now; across a
// reload it is handed the next agent (set).
type statusServer struct {
	agentServer
	path    string
	started time.Time
}

// listenStatus listens on path. A socket file already there was left by
// an agent that was killed (the state_dir lock, held by now, says no other
// agent runs on it; the runtime directory is the unit's own).
func listenStatus(path string, log *slog.Logger) (*statusServer, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("status socket %s: exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("status socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	// The socket has the process's group (the service's); writing it is
	// what connecting takes.
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket: %w", err)
	}
	s := &statusServer{path: path, started: time.Now()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+statusPath, s.handle)
	s.serve(ln, mux, 0, log, "status socket stopped", "socket", path)
	return s, nil
}

// set is agentServer's, on a socket that may not be there (nil).
func (s *statusServer) set(a *agent.Agent) {
	if s != nil {
		s.agentServer.set(a)
	}
}

// close is agentServer's, on a socket that may not be there (nil).
func (s *statusServer) close() {
	if s != nil {
		s.agentServer.close()
	}
}

func (s *statusServer) handle(w http.ResponseWriter, _ *http.Request) {
	rep, ok := s.report()
	if !ok {
		reloading(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

func (s *statusServer) report() (statusReport, bool) {
	var snap agent.Snapshot
	if !s.with(func(a *agent.Agent) { snap = a.Snapshot() }) {
		return statusReport{}, false
	}
	rep := statusReport{Version: buildVersion(), PID: os.Getpid(), Started: s.started.UTC(), Socket: s.path,
		State: "healthy", Problems: snap.Problems(), Snapshot: snap}
	if len(rep.Problems) > 0 {
		rep.State = "degraded"
	}
	return rep, true
}
