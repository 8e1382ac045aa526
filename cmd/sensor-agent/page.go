package main

// The live page of `http.listen`: / is one self-contained page embedded
// in the binary (no CDN: the Pi may be offline), which polls /api/state
// and /api/history while it is open. Nobody watching costs nothing but
// the history's ring (agent/history), filled on the reading path.

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/agent/history"
	"github.com/sensor-agent/sensor-agent/sensors"
)

//go:embed page.html
var pageHTML []byte

// historyMaxPoints bounds the points per series in one answer: about a
// chart's width in pixels on a desktop screen.
const historyMaxPoints = 1200

func (s *httpServer) page(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	// The page's script and style are inline; nothing else may load.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(pageHTML)
}

// pageState is /api/state: what `status -json` shows, and what the page
// needs to label its charts.
type pageState struct {
	Version  string            `json:"version"`
	Problems []string          `json:"problems"`
	History  int64             `json:"history_ms"` // how far back the charts go
	Units    map[string]string `json:"units"`      // value name → unit, for the names in use
	agent.Snapshot
}

func (s *httpServer) state(w http.ResponseWriter, _ *http.Request) {
	var snap agent.Snapshot
	if !s.with(func(a *agent.Agent) { snap = a.Snapshot() }) {
		reloading(w)
		return
	}
	st := pageState{Version: buildVersion(), Problems: snap.Problems(), History: s.hist.Window().Milliseconds(),
		Units: map[string]string{}, Snapshot: snap}
	if st.Problems == nil {
		st.Problems = []string{}
	}
	for _, sn := range snap.Sensors {
		for k := range sn.Values {
			if _, u := sensors.Unit(k); u != "" {
				st.Units[k] = u
			}
		}
	}
	writeJSON(w, st)
}

// historyAnswer is /api/history.
type historyAnswer struct {
	Now     int64                   `json:"now"` // unix ms
	Sensors []history.SensorHistory `json:"sensors"`
}

// history answers /api/history?since=MS: every sensor's points newer than
// since (unix ms; 0 or absent = the whole window), thinned to
// historyMaxPoints per series.
func (s *httpServer) history(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			http.Error(w, "since: want unix milliseconds, e.g. since=1733300000000", http.StatusBadRequest)
			return
		}
		since = time.UnixMilli(ms)
	}
	now := time.Now()
	writeJSON(w, historyAnswer{Now: now.UnixMilli(), Sensors: s.hist.Since(since, now, historyMaxPoints)})
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}
