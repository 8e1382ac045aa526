package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/history"
)

func TestPageHandlers(t *testing.T) {
	hist := &history.Store{}
	hist.Configure(time.Hour, 1<<20, []history.Sensor{{Name: "air", Interval: time.Second}})
	now := time.Now()
	for i := range 5 {
		hist.Recorder("air").Add(now.Add(time.Duration(i-5)*time.Second), map[string]float64{"temperature_c": float64(20 + i)})
	}
	s := &httpServer{hist: hist}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", s.page)
	mux.HandleFunc("GET /api/state", s.state)
	mux.HandleFunc("GET /api/history", s.history)
	tests := []struct {
		path  string
		code  int
		ctype string
		body  string
	}{
		{"/", 200, "text/html; charset=utf-8", `id="cards"`},
		{"/favicon.ico", 404, "", ""},
		{"/api/state", 503, "", "reloading"}, // no agent handed over yet
		{"/api/history", 200, "application/json", `"name":"air"`},
		{"/api/history?since=abc", 400, "", "since: want unix milliseconds"},
		{"/api/history?since=-1", 400, "", "since"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.code || (tt.ctype != "" && rec.Header().Get("Content-Type") != tt.ctype) ||
				!strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("GET %s: %d %q %.200q; want %d %q containing %q", tt.path, rec.Code,
					rec.Header().Get("Content-Type"), rec.Body.String(), tt.code, tt.ctype, tt.body)
			}
		})
	}
	// since: only the points after it.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/history?since="+
		strconv.FormatInt(now.Add(-3*time.Second).UnixMilli(), 10), nil))
	var h historyAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	if got := h.Sensors[0].Series[0].Vals; len(got) != 2 || got[0] != 23 || got[1] != 24 {
		t.Errorf("since 3 s ago: %v, want [23 24]", got)
	}
	if csp := func() string {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		return rec.Header().Get("Content-Security-Policy")
	}(); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy %q: want nothing loaded but the agent's own JSON", csp)
	}
}
