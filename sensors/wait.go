package sensors

import (
	"context"
	"time"
)

// Waiting that honours a context: periph's drivers sleep without one, so
// the drivers do their own waiting before calling them.

// sleepUntil waits until t or until ctx is done, whichever comes first. A
// t in the past returns at once (ctx's error if it is done).
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	return waitCtx(ctx, d)
}

// waitCtx sleeps for d or until ctx is done.
func waitCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
