package clock

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestUntilNext(t *testing.T) {
	base := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		now  time.Time
		d    time.Duration
		want time.Duration
	}{
		{base, time.Second, time.Second}, // on a multiple: the next one
		{base.Add(300 * time.Millisecond), time.Second, 700 * time.Millisecond},
		{base.Add(3 * time.Second), 5 * time.Second, 2 * time.Second},
		{base.Add(99 * time.Millisecond), 100 * time.Millisecond, time.Millisecond},
	} {
		if got := UntilNext(c.now, c.d); got != c.want {
			t.Errorf("UntilNext(%s, %s) = %s, want %s", c.now.Format("15:04:05.000"), c.d, got, c.want)
		}
	}
}

func TestTickerFiresOnTheGrid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(1300 * time.Millisecond) // off the grid
		tk := NewTicker(time.Second)
		defer tk.Stop()
		for i := range 3 {
			at := <-tk.C
			tk.Next()
			if at.Truncate(time.Second) != at {
				t.Errorf("tick %d at %s, want a whole second", i, at.Format("05.000"))
			}
		}
	})
}
