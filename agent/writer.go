package agent

import (
	"time"

	"github.com/sensor-agent/sensor-agent/agent/clock"
	"github.com/sensor-agent/sensor-agent/agent/reading"
	"github.com/sensor-agent/sensor-agent/agent/scheduler"
	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// maxGroup bounds the readings written with one write() call.
const maxGroup = 256

// writeLoop stamps samples into readings (seq + time) and appends them to
// the store, one write per group of readings that arrived together, so
// every reading reaches the operating system before the next is taken
// (a SIGKILL loses nothing). What it wrote is fsynced within
// sync_interval, at the interval's next wall-clock multiple (0: after
// every group), which bounds what a power cut can lose.
func (a *Agent) writeLoop(samples <-chan []scheduler.Sample) {
	interval := a.cfg.Spool.SyncInterval.D()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false
	var recs []spool.Record
	for {
		select {
		case group, ok := <-samples:
			if !ok {
				a.sync()
				return
			}
			// One buffer for the group's records: one allocation, not
			// one per reading. Each Data is capped to its own bytes.
			buf := make([]byte, 0, len(group)*recordGuess)
			recs = recs[:0]
			for _, s := range group {
				var r spool.Record
				r, buf = a.record(buf, s)
				recs = append(recs, r)
			}
		drain:
			for len(recs) < maxGroup {
				select {
				case group, ok := <-samples:
					if !ok {
						break drain // the outer loop sees the close
					}
					for _, s := range group {
						var r spool.Record
						r, buf = a.record(buf, s)
						recs = append(recs, r)
					}
				default:
					break drain
				}
			}
			if len(recs) == 0 {
				continue
			}
			a.st.store.Append(recs)
			a.head.Store(recs[len(recs)-1].Seq)
			// No wake here: only durable records are sent, and sync wakes
			// the sender when there are some (one wake-up per sync, not
			// one per reading).
			switch {
			case interval == 0:
				a.sync()
			case !armed:
				// At the next wall-clock multiple of the interval (at
				// most interval away): the sync then shares the
				// wake-up of the readings taken at that moment.
				timer.Reset(clock.UntilNext(time.Now(), interval))
				armed = true
			}
		case <-timer.C:
			armed = false
			a.sync()
		}
	}
}

// recordGuess is about the size of a reading's record: topic line plus
// JSON with three values.
const recordGuess = 200

// record stamps a sample (seq, UTC time, and the topic it will go to),
// encoding it at the end of buf; it returns the record and buf. A seq
// the counter could not make durable goes with the volatile incarnation.
func (a *Agent) record(buf []byte, s scheduler.Sample) (spool.Record, []byte) {
	n, durable := a.st.seq.Next()
	if durable != a.seqDurable {
		a.seqDurable = durable
		if durable {
			a.log.Warn("sequence counter written again: readings are numbered under the spool's incarnation")
		} else {
			a.log.Error(`cannot write the sequence counter: readings carry a volatile incarnation ("volatile":true) until it can be written, so their numbers stay unique`,
				"err", a.st.seq.Err())
		}
	}
	a.taken.Add(1) // health readings included: taken and published compare
	if s.Type == "" {
		a.sensors[s.Sensor].note(s.Time, s.Values) // for Snapshot
	}
	r := reading.Reading{Seq: n, Sensor: s.Sensor, Driver: s.Driver, Time: s.Time.UTC(), Values: s.Values,
		Type: s.Type, Error: s.Error, LastSuccess: s.LastSuccess, ClockUnsynced: !a.clockNow()}
	h := Head{Topic: a.topics[s.Sensor]}
	if !durable {
		h.Incarnation, h.Volatile = a.st.store.Volatile(), true
	}
	from := len(buf)
	buf = r.AppendJSON(appendHead(buf, h))
	return spool.Record{Seq: n, Data: buf[from:len(buf):len(buf)]}, buf
}

// logClockAtStart says whether the clock is synchronised. Sampling starts
// either way: waiting could mean waiting forever on a device without
// network, and the readings taken meanwhile are flagged.
func (a *Agent) logClockAtStart() {
	synced := a.opts.Clock.Synced()
	a.clockSynced.Store(synced)
	if synced {
		a.log.Info("system clock is synchronised")
		return
	}
	a.log.Warn(`system clock is not synchronised yet: sampling anyway, readings carry "clock_synced":false until it is`)
}

// clockNow asks the clock whether it is synchronised (the answer is cached
// there) and logs when that changes.
func (a *Agent) clockNow() bool {
	synced := a.opts.Clock.Synced()
	if a.clockSynced.Swap(synced) != synced {
		if synced {
			a.log.Info("system clock synchronised: readings are no longer flagged")
		} else {
			a.log.Warn(`system clock no longer synchronised: readings carry "clock_synced":false`)
		}
	}
	return synced
}

func (a *Agent) sync() {
	synced, err := a.st.store.Sync()
	if err != nil {
		// Once per distinct error, or per minute: a failing disk must not
		// flood the journal.
		if msg := err.Error(); msg != a.syncErr || time.Since(a.syncErrAt) >= time.Minute {
			a.syncErr, a.syncErrAt = msg, time.Now()
			a.log.Error("spool sync failed: readings since the last sync may be lost in a power cut", "err", err)
		}
		a.wake() // what memory holds may be sent
		return
	}
	a.syncErr = ""
	a.wake() // what is durable now may be sent
	if synced > a.synced.Load() {
		a.synced.Store(synced)
		// The power-cut test reads this line: every seq up to
		// `through` must survive.
		a.log.Debug("spool synced", "through", synced)
	}
}
