package clock

import "time"

// Ticker fires at the wall clock's multiples of its period, like the
// sensors' grid: periodic work (a status line, a file check, a watchdog
// ping) then shares the process's wake-ups with the readings taken at
// the same moment instead of adding its own. Unlike time.Ticker it does
// not drift from the wall clock when NTP slews it.
type Ticker struct {
	C      <-chan time.Time
	timer  *time.Timer
	period time.Duration
}

// NewTicker returns a Ticker; it fires first at the next multiple.
func NewTicker(period time.Duration) *Ticker {
	t := &Ticker{period: period}
	t.timer = time.NewTimer(UntilNext(time.Now(), period))
	t.C = t.timer.C
	return t
}

// Next arms the ticker for the following multiple; call it after each
// receive from C.
func (t *Ticker) Next() { t.timer.Reset(UntilNext(time.Now(), t.period)) }

// Stop stops it.
func (t *Ticker) Stop() { t.timer.Stop() }

// UntilNext is the time from now to the next wall-clock multiple of d.
func UntilNext(now time.Time, d time.Duration) time.Duration {
	return now.Truncate(d).Add(d).Sub(now)
}
