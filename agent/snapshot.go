package agent

// Snapshot: what `sensor-agent status` shows, built from what the agent
// tracks anyway. Only the last values per sensor are kept for it on the
// reading path (sensorState.note, one map copy per reading under the
// sensor's own mutex, no allocation once the value names are known).

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/history"
	"github.com/sensor-agent/sensor-agent/agent/scheduler"
	"github.com/sensor-agent/sensor-agent/agent/spool"
	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/sensors"
)

// Snapshot is the agent's state at one moment.
type Snapshot struct {
	Device      string           `json:"device"`
	Config      string           `json:"config"`
	Started     time.Time        `json:"config_loaded"` // this config's agent started (a reload starts anew)
	Time        time.Time        `json:"time"`
	ClockSynced bool             `json:"clock_synced"`
	Certificate *Certificate     `json:"certificate,omitempty"` // nil without the real publisher
	Route       Route            `json:"route"`
	Publish     PublishState     `json:"publish"`
	Sensors     []SensorSnapshot `json:"sensors"`
	Spool       SpoolSnapshot    `json:"spool"`
	Remote      *RemoteConfig    `json:"remote,omitempty"` // nil: the shadow is off
}

// RemoteConfig is the Device Shadow's desired state and what came of it.
type RemoteConfig struct {
	// Version is the shadow version whose desired state is in effect
	// (0: none yet).
	Version int64 `json:"version"`
	// Applied is that desired state, overlaid on the config file.
	Applied map[string]any `json:"applied,omitempty"`
	// Error says why the latest desired state was refused ("" when it
	// was applied); the agent runs on without it.
	Error string `json:"error,omitempty"`
}

// Certificate is the device certificate in use.
type Certificate struct {
	// ID is AWS IoT's certificate id: the SHA-256 of its DER, in hex.
	ID       string    `json:"id"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"` // whole days, negative once expired
}

// Route is how publishes reach the endpoint.
type Route struct {
	Host        string `json:"host"`
	Port        int    `json:"port"`               // the port in use
	Fallback    bool   `json:"fallback,omitempty"` // on fallback_port: the configured port is unreachable
	ALPN        bool   `json:"alpn"`
	Proxy       string `json:"proxy,omitempty"` // redacted; "" = direct
	ProxySource string `json:"proxy_source,omitempty"`
}

// PublishState is how publishing goes.
type PublishState struct {
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"` // "" when the last attempt succeeded
	Messages    int64     `json:"messages"`
	Readings    int64     `json:"readings"`
	Errors      int64     `json:"errors"`
	Taken       int64     `json:"readings_taken"`
}

// SensorSnapshot is one sensor.
type SensorSnapshot struct {
	Name              string             `json:"name"`
	Driver            string             `json:"driver"`
	Interval          string             `json:"interval"`
	Healthy           bool               `json:"healthy"`
	Done              bool               `json:"done,omitempty"` // a sim sensor with count: no more readings
	ConsecutiveErrors int                `json:"consecutive_errors"`
	ReadErrors        int64              `json:"read_errors"` // failed reads since the agent started
	LastError         string             `json:"last_error,omitempty"`
	LastReading       time.Time          `json:"last_reading,omitzero"`
	Values            map[string]float64 `json:"values,omitempty"`
}

// SpoolSnapshot is what waits to be published, and what was lost.
type SpoolSnapshot struct {
	Dir          string    `json:"dir"`
	MemoryMode   bool      `json:"memory_mode"` // the spool cannot be written: readings wait in memory
	MemoryReason string    `json:"memory_reason,omitempty"`
	Pending      int64     `json:"pending"`   // readings not yet acknowledged, memory included
	InMemory     int64     `json:"in_memory"` // of them, held only in memory
	Oldest       time.Time `json:"oldest,omitzero"`
	DiskBytes    int64     `json:"disk_bytes"`
	// Dropped counts lost readings by reason: reported to the cloud since
	// start, plus reports still waiting to go out.
	Dropped        map[string]uint64 `json:"dropped,omitempty"`
	DeadLettered   int64             `json:"dead_lettered"` // readings since start
	DeadLetterFile string            `json:"dead_letter_file"`
}

// Problems lists why the agent is degraded: failing sensors, failing
// publishes, a spool in memory mode. None means healthy.
func (s *Snapshot) Problems() []string {
	var out []string
	for _, sn := range s.Sensors {
		if !sn.Healthy {
			out = append(out, fmt.Sprintf("sensor %s failing (%d consecutive errors): %s", sn.Name, sn.ConsecutiveErrors, sn.LastError))
		}
	}
	if s.Publish.LastError != "" {
		out = append(out, "publishing failing: "+s.Publish.LastError)
	}
	if s.Spool.MemoryMode {
		out = append(out, "spool not writable, readings held in memory: "+s.Spool.MemoryReason)
	}
	if s.Remote != nil && s.Remote.Error != "" {
		out = append(out, "remote configuration refused: "+s.Remote.Error)
	}
	return out
}

// sensorState is what the snapshot shows of a sensor.
type sensorState struct {
	interval time.Duration

	mu     sync.Mutex
	status scheduler.Status
	seen   bool  // a status arrived
	errors int64 // failed reads: statuses with an error
	last   time.Time
	values sensors.Values    // reused: values are copied in
	hist   *history.Recorder // the live page's history; nil without one
}

// note keeps a measurement's values. The map is copied, not kept: a
// driver may reuse its own.
func (st *sensorState) note(t time.Time, v sensors.Values) {
	if st == nil {
		return
	}
	st.mu.Lock()
	clear(st.values) // keeps its buckets: no allocation below
	if st.values == nil {
		st.values = make(sensors.Values, len(v))
	}
	for k, x := range v {
		st.values[k] = x
	}
	st.last = t
	st.mu.Unlock()
	st.hist.Add(t, v)
}

func (st *sensorState) setStatus(s scheduler.Status) {
	if st == nil {
		return
	}
	st.mu.Lock()
	st.status, st.seen = s, true
	if s.LastError != nil && s.ConsecutiveErrors > 0 {
		st.errors++
	}
	st.mu.Unlock()
}

// newSensorStates makes the per-sensor state, taking the last values over
// from the agent a reload replaces.
func (a *Agent) newSensorStates() map[string]*sensorState {
	out := make(map[string]*sensorState, len(a.cfg.Sensors))
	for _, s := range a.cfg.Sensors {
		st := &sensorState{interval: s.Interval.D()}
		if prev := a.opts.Previous; prev != nil {
			if old := prev.sensors[s.Name]; old != nil {
				old.mu.Lock()
				st.last, st.values = old.last, maps.Clone(old.values)
				old.mu.Unlock()
			}
		}
		out[s.Name] = st
	}
	return out
}

// Snapshot returns the agent's state now. Safe to call at any time after
// Provision, concurrently with Run.
func (a *Agent) Snapshot() Snapshot {
	st := a.Stats()
	now := time.Now()
	s := Snapshot{
		Device: a.cfg.DeviceID, Config: a.cfg.File, Started: a.started, Time: now.UTC(),
		ClockSynced: a.opts.Clock.Synced(),
		Route:       a.route(),
		Publish: PublishState{LastSuccess: st.LastPublish, LastError: st.LastPublishError,
			Messages: st.BatchesPublished, Readings: st.ReadingsPublished, Errors: st.PublishErrors,
			Taken: st.ReadingsTaken},
	}
	if c, ok := a.pub.(interface{ Certificate() *x509.Certificate }); ok {
		if leaf := c.Certificate(); leaf != nil {
			sum := sha256.Sum256(leaf.Raw)
			s.Certificate = &Certificate{ID: hex.EncodeToString(sum[:]), Subject: leaf.Subject.CommonName, NotAfter: leaf.NotAfter.UTC(),
				DaysLeft: int(math.Floor(leaf.NotAfter.Sub(now).Hours() / 24))}
		}
	}
	for _, c := range a.cfg.Sensors {
		s.Sensors = append(s.Sensors, a.sensorSnapshot(c.Name, c.Driver))
	}
	s.Spool = a.spoolSnapshot(st.DeadLettered)
	if a.opts.Remote != nil {
		s.Remote = a.opts.Remote()
	}
	return s
}

func (a *Agent) route() Route {
	r := Route{Host: a.cfg.Endpoint.Host, Port: a.cfg.Endpoint.Port}
	if p, ok := a.pub.(interface{ ActivePort() int }); ok {
		r.Port = p.ActivePort()
		r.Fallback = r.Port != a.cfg.Endpoint.Port
	}
	if p, ok := a.pub.(interface{ ALPN() bool }); ok {
		r.ALPN = p.ALPN() && !r.Fallback // the fallback port goes without ALPN
	}
	if p, ok := a.pub.(interface{ Proxy() (string, string) }); ok {
		r.Proxy, r.ProxySource = p.Proxy()
	}
	return r
}

func (a *Agent) sensorSnapshot(name, driver string) SensorSnapshot {
	out := SensorSnapshot{Name: name, Driver: driver, Healthy: true}
	st := a.sensors[name]
	if st == nil {
		return out
	}
	out.Interval = st.interval.String()
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.last.IsZero() {
		out.LastReading = st.last.UTC()
	}
	out.Values = maps.Clone(st.values)
	if st.seen {
		out.ConsecutiveErrors, out.Done = st.status.ConsecutiveErrors, st.status.Done
		out.ReadErrors = st.errors
		out.Healthy = st.status.ConsecutiveErrors == 0
		if !out.Healthy && st.status.LastError != nil {
			out.LastError = st.status.LastError.Error()
		}
	}
	return out
}

func (a *Agent) spoolSnapshot(deadLettered int64) SpoolSnapshot {
	out := SpoolSnapshot{Dir: a.cfg.Spool.Dir, DeadLettered: deadLettered,
		DeadLetterFile: filepath.Join(a.cfg.Spool.Dir, DeadLetterFile)}
	a.mu.Lock()
	for reason, n := range a.droppedReported {
		if out.Dropped == nil {
			out.Dropped = map[string]uint64{}
		}
		out.Dropped[reason] += n
	}
	a.mu.Unlock()
	if a.st == nil {
		return out
	}
	s := a.st.store
	out.Pending, out.InMemory = s.Counts()
	out.Pending += out.InMemory
	out.MemoryMode, out.MemoryReason, out.DiskBytes = s.state()
	for _, d := range s.Dropped() {
		if out.Dropped == nil {
			out.Dropped = map[string]uint64{}
		}
		out.Dropped[d.Reason.String()] += d.Count
	}
	_, _ = s.Pending(0, 1, func(r spool.Record, _ string) bool {
		_, js, ok := SplitRecord(r.Data)
		var rd struct{ Time time.Time }
		if ok && json.Unmarshal(js, &rd) == nil {
			out.Oldest = rd.Time.UTC()
		}
		return false
	})
	return out
}

// state says whether appends go to memory, why, and the spool's bytes on
// disk.
func (s *store) state() (memory bool, reason string, diskBytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.degraded && s.spErr != nil {
		reason = s.spErr.Error()
	}
	if s.sp != nil {
		diskBytes = s.sp.Stats().Bytes
	}
	return s.degraded, reason, diskBytes
}

// countReported adds the loss reports a delivered message carried.
func (a *Agent) countReported(reported []spool.DroppedRange) {
	if len(reported) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.droppedReported == nil {
		a.droppedReported = map[string]uint64{}
	}
	for _, d := range reported {
		a.droppedReported[d.Reason.String()] += d.Count
	}
}

// Shadow sends a Device Shadow request on the publisher's connection
// (its port, ALPN, proxy and fallback), for the shadow loop.
func (a *Agent) Shadow(ctx context.Context, method, thing, name string, body []byte) (publisher.ShadowReply, error) {
	s, ok := a.pub.(interface {
		Shadow(ctx context.Context, method, thing, name string, body []byte) (publisher.ShadowReply, error)
	})
	if !ok {
		return publisher.ShadowReply{}, errors.New("shadow: the publisher in use has no Device Shadow API")
	}
	return s.Shadow(ctx, method, thing, name, body)
}
