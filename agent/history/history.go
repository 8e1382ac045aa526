// Package history keeps the recent values of every sensor in memory, for
// the live page's charts. It is bounded in bytes: when a sensor's readings
// over the window do not fit its share, consecutive readings are averaged
// into equal time buckets. Nothing is written to disk; a restart starts
// empty, a config reload keeps what fits.
package history

import (
	"slices"
	"sync"
	"time"
)

// pointBytes is what one kept point costs: its time (unix ms) and value.
const pointBytes = 8 + 4

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
	sensors map[string]*sensor
}

type sensor struct {
	interval time.Duration
	budget   int64 // bytes for all of this sensor's series
	used     int64
	keys     []string // in order of first appearance
	series   map[string]*series
}

// Configure sets the window, the byte bound and the sensors: a reload's
// config. Sensors gone from the config are forgotten; the others keep
// their points, re-bucketed when their share or interval changed.
func (s *Store) Configure(window time.Duration, maxBytes int64, sensors []Sensor) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window = window
	old := s.sensors
	s.sensors = make(map[string]*sensor, len(sensors))
	s.order = s.order[:0]
	var share int64
	if len(sensors) > 0 {
		share = maxBytes / int64(len(sensors))
	}
	for _, c := range sensors {
		n := &sensor{interval: c.Interval, budget: share, series: map[string]*series{}}
		if prev := old[c.Name]; prev != nil {
			n.refill(prev, window)
		}
		s.sensors[c.Name] = n
		s.order = append(s.order, c.Name)
	}
}

// Add records one reading's values. Safe for concurrent use; it does not
// allocate once a sensor's series exist.
func (s *Store) Add(name string, t time.Time, values map[string]float64) {
	if s == nil || len(values) == 0 {
		return
	}
	ms := t.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := s.sensors[name]
	if sn == nil {
		return
	}
	for k, v := range values {
		sr := sn.series[k]
		if sr == nil {
			if sr = sn.newSeries(k, len(values), s.window); sr == nil {
				continue
			}
		}
		sr.add(ms, v)
	}
}

// newSeries makes key's series, sized from the sensor's share split over
// the n values its readings carry; nil when the share is spent (a driver
// that adds value names later).
func (sn *sensor) newSeries(key string, n int, window time.Duration) *series {
	want := int64(2)
	if sn.interval > 0 {
		want = int64(window/sn.interval) + 2
	}
	fits := sn.budget / int64(n) / pointBytes
	if left := (sn.budget - sn.used) / pointBytes; fits > left {
		fits = left
	}
	if fits < 2 {
		return nil
	}
	capacity := min(want, fits)
	var step int64 // the readings of a window do not fit: average into buckets
	if capacity < want {
		step = max(1, (window.Milliseconds()+capacity-3)/(capacity-2))
	}
	sr := newSeries(int(capacity), step)
	sn.used += capacity * pointBytes
	sn.keys = append(sn.keys, key)
	sn.series[key] = sr
	return sr
}

// refill takes prev's points over into sn's new series.
func (sn *sensor) refill(prev *sensor, window time.Duration) {
	for _, k := range prev.keys {
		p := prev.series[k]
		var sr *series
		p.each(func(t int64, v float32) {
			if sr == nil {
				if sr = sn.newSeries(k, len(prev.keys), window); sr == nil {
					return
				}
			}
			sr.add(t, float64(v))
		})
	}
}

// Series is one value's points, oldest first.
type Series struct {
	Key  string    `json:"key"`
	Time []int64   `json:"t"` // unix milliseconds
	Vals []float32 `json:"v"`
}

// SensorHistory is one sensor's series.
type SensorHistory struct {
	Name string `json:"name"`
	// Step is the bucket width in milliseconds when readings are
	// averaged to fit the byte bound, 0 when every reading is kept.
	Step   int64    `json:"step_ms"`
	Series []Series `json:"series"`
}

// Since returns, for every sensor in config order, the points newer than
// since and inside the window ending at now; at most limit points per
// series (0 = all), averaged into buckets when there are more.
func (s *Store) Since(since, now time.Time, limit int) []SensorHistory {
	if s == nil {
		return nil
	}
	from := max(since.UnixMilli()+1, now.Add(-s.window).UnixMilli())
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SensorHistory, 0, len(s.order))
	for _, name := range s.order {
		sn := s.sensors[name]
		h := SensorHistory{Name: name, Series: []Series{}}
		for _, k := range sn.keys {
			sr := sn.series[k]
			h.Step = max(h.Step, sr.step)
			h.Series = append(h.Series, sr.since(k, from, limit))
		}
		out = append(out, h)
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
	for _, sn := range s.sensors {
		n += sn.used
	}
	return n
}

// keys lists a sensor's value names, for tests.
func (s *Store) keys(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn := s.sensors[name]; sn != nil {
		return slices.Clone(sn.keys)
	}
	return nil
}
