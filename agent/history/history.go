// Package history keeps the recent values of every sensor in memory, for
// the live page's charts. It is bounded in bytes: when a sensor's readings
// over the window do not fit its share, consecutive readings are averaged
// into equal time buckets. Nothing is written to disk; a restart starts
// empty, a config reload keeps what fits.
package history

import (
	"sync"
	"time"
)

// Sensor is one configured sensor.
type Sensor struct {
	Name     string
	Interval time.Duration
}

// Store is the history of every sensor. Its zero value keeps nothing
// until Configure names the sensors; a nil *Store records nothing, so the
// agent runs the same without one.
type Store struct {
	mu      sync.Mutex
	window  time.Duration
	order   []string
	sensors map[string]*Recorder
}

// Configure sets the window, the byte bound and the sensors: a reload's
// config. Sensors gone from the config are forgotten; the others keep
// their points, re-bucketed when their share or interval changed.
// Recorders handed out before are stale afterwards.
func (s *Store) Configure(window time.Duration, maxBytes int64, sensors []Sensor) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window = window
	old := s.sensors
	s.sensors = make(map[string]*Recorder, len(sensors))
	s.order = s.order[:0]
	var share int64
	if len(sensors) > 0 {
		share = maxBytes / int64(len(sensors))
	}
	for _, c := range sensors {
		r := &Recorder{interval: c.Interval, budget: share, window: window}
		if prev := old[c.Name]; prev != nil {
			r.refill(prev)
		}
		s.sensors[c.Name] = r
		s.order = append(s.order, c.Name)
	}
}

// Recorder returns the sensor's recorder, nil when it is not configured
// (a nil *Recorder records nothing). The agent keeps one per sensor, so
// a reading costs no lookup by name.
func (s *Store) Recorder(name string) *Recorder {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sensors[name]
}

// SensorHistory is one sensor's series.
type SensorHistory struct {
	Name string `json:"name"`
	// Step is the bucket width in milliseconds when readings are
	// averaged to fit the byte bound, 0 when every reading is kept.
	Step   int64    `json:"step_ms"`
	Series []Series `json:"series"`
}

// Series is one value's points, oldest first.
type Series struct {
	Key  string    `json:"key"`
	Time []int64   `json:"t"` // unix milliseconds
	Vals []float32 `json:"v"`
}

// Since returns, for every sensor in config order, the points newer than
// since and inside the window ending at now; at most limit points per
// series (0 = all), averaged into buckets when there are more.
func (s *Store) Since(since, now time.Time, limit int) []SensorHistory {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	from := max(since.UnixMilli()+1, now.Add(-s.window).UnixMilli())
	out := make([]SensorHistory, 0, len(s.order))
	for _, name := range s.order {
		out = append(out, s.sensors[name].since(name, from, limit))
	}
	return out
}

// Window is how far back the store keeps values.
func (s *Store) Window() time.Duration {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.window
}

// Bytes is the memory the points take, for the README's figure and tests.
func (s *Store) Bytes() int64 {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, r := range s.sensors {
		n += r.bytes()
	}
	return n
}
