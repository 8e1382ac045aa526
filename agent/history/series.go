package history

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Recorder is one sensor's history: a ring of rows, one per reading (or
// bucket), each its time and one column per value. Row-major, so a
// reading touches two short runs of memory: in an idle agent every
// reading finds the caches cold.
type Recorder struct {
	interval time.Duration
	budget   int64 // bytes for this sensor
	window   time.Duration

	mu      sync.Mutex
	keys    []string // the columns: the value names of the first reading
	step    int64    // bucket width in ms; 0 = one row per reading
	t       []int64
	v       []float32 // len(t) × len(keys); NaN where a reading lacked the value
	head, n int
	sum     []float64 // the newest bucket's sums per column, and its count
	cnt     int
}

// layout sizes the ring for the first reading's values; false when the
// share cannot hold two rows.
func (r *Recorder) layout(values map[string]float64) bool {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rowBytes := int64(8 + 4*len(keys))
	want := int64(2)
	if r.interval > 0 {
		want = int64(r.window/r.interval) + 2
	}
	rows := min(want, r.budget/rowBytes)
	if rows < 2 {
		return false
	}
	if rows < want { // the window's readings do not fit: average into buckets
		r.step = max(1, (r.window.Milliseconds()+rows-3)/(rows-2))
	}
	r.keys = keys
	r.t = make([]int64, rows)
	r.v = make([]float32, int(rows)*len(keys))
	r.sum = make([]float64, len(keys))
	return true
}

// Add records one reading. It does not allocate after the first; value
// names that were not in the first reading are not kept.
func (r *Recorder) Add(t time.Time, values map[string]float64) {
	if r == nil || len(values) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil && !r.layout(values) {
		return
	}
	r.add(t.UnixMilli(), func(i int) float64 {
		if x, ok := values[r.keys[i]]; ok && !math.IsInf(x, 0) {
			return x
		}
		return math.NaN() // JSON has no NaN: such a point is left out
	})
}

func (r *Recorder) add(ms int64, value func(col int) float64) {
	cols := len(r.keys)
	if r.n > 0 {
		last := (r.head + r.n - 1) % len(r.t)
		switch lt := r.t[last]; {
		case ms < lt:
			r.n = 0 // the clock went back: older points would sit in the future
		case r.step > 0 && floorDiv(ms, r.step) == floorDiv(lt, r.step):
			r.cnt++
			row := r.v[last*cols : last*cols+cols]
			for i := range row {
				x := value(i)
				r.sum[i] += x // NaN stays NaN: the bucket lacks the value
				row[i] = float32(r.sum[i] / float64(r.cnt))
			}
			return
		}
	}
	if r.n == len(r.t) {
		r.head = (r.head + 1) % len(r.t)
		r.n--
	}
	i := (r.head + r.n) % len(r.t)
	r.t[i] = ms
	row := r.v[i*cols : i*cols+cols]
	for c := range row {
		x := value(c)
		r.sum[c], row[c] = x, float32(x)
	}
	r.cnt = 1
	r.n++
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// refill takes prev's rows over.
func (r *Recorder) refill(prev *Recorder) {
	prev.mu.Lock()
	defer prev.mu.Unlock()
	if prev.keys == nil {
		return
	}
	vals := make(map[string]float64, len(prev.keys))
	for j := range prev.n {
		i := (prev.head + j) % len(prev.t)
		for c, k := range prev.keys {
			vals[k] = float64(prev.v[i*len(prev.keys)+c])
		}
		if r.keys == nil && !r.layout(vals) {
			return
		}
		r.add(prev.t[i], func(c int) float64 { return vals[r.keys[c]] })
	}
}

func (r *Recorder) bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(len(r.t))*8 + int64(len(r.v))*4
}

// since exports the rows at or after from, a series per value; more than
// limit (> 0) points are averaged a bucket of rows at a time, each at its
// first row's time.
func (r *Recorder) since(name string, from int64, limit int) SensorHistory {
	h := SensorHistory{Name: name, Series: []Series{}}
	if r == nil {
		return h
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	h.Step = r.step
	first := r.n
	for j := range r.n {
		if r.t[(r.head+j)%len(r.t)] >= from {
			first = j
			break
		}
	}
	per := 1
	if count := r.n - first; limit > 0 && count > limit {
		per = (count + limit - 1) / limit
	}
	cols := len(r.keys)
	for c, key := range r.keys {
		sr := Series{Key: key, Time: []int64{}, Vals: []float32{}}
		for j := first; j < r.n; j += per {
			var sum float64
			k := 0
			for m := j; m < j+per && m < r.n; m++ {
				if x := r.v[((r.head+m)%len(r.t))*cols+c]; !math.IsNaN(float64(x)) {
					sum += float64(x)
					k++
				}
			}
			if k > 0 {
				sr.Time = append(sr.Time, r.t[(r.head+j)%len(r.t)])
				sr.Vals = append(sr.Vals, float32(sum/float64(k)))
			}
		}
		h.Series = append(h.Series, sr)
	}
	return h
}
