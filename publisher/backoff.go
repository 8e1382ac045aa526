package publisher

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Backoff computes retry delays: Min*Factor^(attempt-1), capped at Max, then
// jittered. Jitter 1 is "full jitter" (uniform in [0, d]), 0.5 is "equal
// jitter" ([d/2, d]), 0 is none. Zero fields take defaults: Min 1s, Max 2m,
// Factor 2.
type Backoff struct {
	Min, Max time.Duration
	Factor   float64
	Jitter   float64 // 0..1
	// Rand returns a number in [0, 1); nil means math/rand/v2. Tests inject
	// a fixed sequence.
	Rand func() float64
}

// DefaultBackoff is full-jitter exponential backoff from 1s to 2m.
func DefaultBackoff() Backoff {
	return Backoff{Min: time.Second, Max: 2 * time.Minute, Factor: 2, Jitter: 1}
}

// Delay returns how long to wait before retry number attempt (1 = the first
// retry). Values below 1 count as 1.
func (b Backoff) Delay(attempt int) time.Duration {
	lo, hi, factor := b.Min, b.Max, b.Factor
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = 2 * time.Minute
	}
	if factor < 1 {
		factor = 2
	}
	attempt = max(attempt, 1)
	d := float64(lo) * math.Pow(factor, float64(attempt-1))
	if math.IsNaN(d) || d > float64(hi) {
		d = float64(hi)
	}
	j := min(max(b.Jitter, 0), 1)
	if j > 0 {
		r := rand.Float64
		if b.Rand != nil {
			r = b.Rand
		}
		d -= d * j * (1 - min(max(r(), 0), 1))
	}
	return time.Duration(d)
}

// PublishRetry publishes, retrying Retry-kind failures with backoff up to
// maxAttempts attempts in all (0 or less: until ctx is done). Permanent and
// Auth failures are returned at once. When ctx ends while waiting, the
// error wraps both the last publish error and ctx.Err().
func (c *Client) PublishRetry(ctx context.Context, topic string, payload []byte, b Backoff, maxAttempts int) (Result, error) {
	for attempt := 1; ; attempt++ {
		res, err := c.Publish(ctx, topic, payload)
		if err == nil || KindOf(err) != Retry {
			return res, err
		}
		if ctx.Err() != nil {
			return res, err // Publish already reports the cancellation
		}
		if maxAttempts > 0 && attempt >= maxAttempts {
			return res, fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		d := b.Delay(attempt)
		if e, ok := errors.AsType[*Error](err); ok && e.RetryAfter > d {
			d = e.RetryAfter
		}
		c.log.Debug("publish failed, retrying", "topic", topic, "attempt", attempt, "delay", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("%w; stopped retrying after %d attempts: %w", err, attempt, ctx.Err())
		case <-t.C:
		}
	}
}
