package agent

// Publish metrics for /metrics: request latency in fixed buckets and
// errors by kind. Both are counted on the publish path only (never per
// reading), with atomics and no allocation.

import (
	"sync/atomic"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
)

// LatencyBuckets are the upper bounds, in seconds, of the publish latency
// histogram: a request on a good link takes tens of milliseconds, and
// endpoint.timeout (10s by default) caps the slow end.
var LatencyBuckets = [...]float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// latency is a histogram of publish request durations.
type latency struct {
	counts [len(LatencyBuckets) + 1]atomic.Uint64 // the last one is +Inf
	sumNS  atomic.Int64
}

func (l *latency) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && s > LatencyBuckets[i] {
		i++
	}
	l.counts[i].Add(1)
	l.sumNS.Add(int64(d))
}

// Histogram is the publish latency histogram at one moment.
type Histogram struct {
	// Cumulative counts observations ≤ LatencyBuckets[i]; the total is
	// Count.
	Cumulative [len(LatencyBuckets)]uint64
	Count      uint64
	Sum        float64 // seconds
}

// PublishMetrics are the publish counters that Stats leaves out.
type PublishMetrics struct {
	Latency Histogram
	// ErrorsByKind counts failed requests by publisher.Kind's name
	// ("retry", "permanent", "auth").
	ErrorsByKind map[string]int64
}

// publishKinds are the kinds a failed publish is counted under.
var publishKinds = [...]publisher.Kind{publisher.Retry, publisher.Permanent, publisher.Auth}

// countPublishError counts a failed request under its kind; an unknown
// kind counts as retry, as publisher.KindOf treats foreign errors.
func (a *Agent) countPublishError(err error) {
	k := publisher.KindOf(err)
	for i, pk := range publishKinds {
		if pk == k {
			a.pubErrKinds[i].Add(1)
			return
		}
	}
	a.pubErrKinds[0].Add(1)
}

// PublishMetrics returns the latency histogram and errors by kind.
func (a *Agent) PublishMetrics() PublishMetrics {
	var h Histogram
	var n uint64
	for i := range LatencyBuckets {
		n += a.latency.counts[i].Load()
		h.Cumulative[i] = n
	}
	h.Count = n + a.latency.counts[len(LatencyBuckets)].Load()
	h.Sum = time.Duration(a.latency.sumNS.Load()).Seconds()
	out := PublishMetrics{Latency: h, ErrorsByKind: make(map[string]int64, len(publishKinds))}
	for i, k := range publishKinds {
		out.ErrorsByKind[k.String()] = a.pubErrKinds[i].Load()
	}
	return out
}
