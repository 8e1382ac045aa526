package history

import "math"

// series is a ring of one value's points, oldest at head.
type series struct {
	step    int64 // bucket width in ms; 0 = one point per reading
	t       []int64
	v       []float32
	head, n int
	sum     float64 // the newest bucket's readings: sum and count
	cnt     int
}

func newSeries(capacity int, step int64) *series {
	return &series{step: step, t: make([]int64, capacity), v: make([]float32, capacity)}
}

// add appends a reading, or averages it into the newest bucket.
func (sr *series) add(t int64, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return // JSON has no NaN; a chart has no use for it
	}
	if sr.n > 0 {
		last := (sr.head + sr.n - 1) % len(sr.t)
		switch lt := sr.t[last]; {
		case t < lt:
			sr.n = 0 // the clock went back: older points would sit in the future
		case sr.step > 0 && floorDiv(t, sr.step) == floorDiv(lt, sr.step):
			sr.sum += v
			sr.cnt++
			sr.v[last] = float32(sr.sum / float64(sr.cnt))
			return
		}
	}
	if sr.n == len(sr.t) {
		sr.head = (sr.head + 1) % len(sr.t)
		sr.n--
	}
	i := (sr.head + sr.n) % len(sr.t)
	sr.t[i], sr.v[i] = t, float32(v)
	sr.sum, sr.cnt = v, 1
	sr.n++
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// each calls fn for every point, oldest first.
func (sr *series) each(fn func(t int64, v float32)) {
	for j := range sr.n {
		i := (sr.head + j) % len(sr.t)
		fn(sr.t[i], sr.v[i])
	}
}

// since returns the points at or after from; more than limit (> 0) are
// averaged max-to-a-bucket's worth at a time, each bucket at its first
// point's time.
func (sr *series) since(key string, from int64, limit int) Series {
	out := Series{Key: key, Time: []int64{}, Vals: []float32{}}
	first := sr.n
	for j := range sr.n {
		if sr.t[(sr.head+j)%len(sr.t)] >= from {
			first = j
			break
		}
	}
	count := sr.n - first
	per := 1
	if limit > 0 && count > limit {
		per = (count + limit - 1) / limit
	}
	for j := first; j < sr.n; j += per {
		var sum float64
		k := 0
		for ; k < per && j+k < sr.n; k++ {
			sum += float64(sr.v[(sr.head+j+k)%len(sr.t)])
		}
		out.Time = append(out.Time, sr.t[(sr.head+j)%len(sr.t)])
		out.Vals = append(out.Vals, float32(sum/float64(k)))
	}
	return out
}
