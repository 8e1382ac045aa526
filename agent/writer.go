package agent

import (
	"bytes"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/reading"
	"github.com/sensor-agent/sensor-agent/agent/scheduler"
	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// maxGroup bounds the readings written with one write() call.
const maxGroup = 256

// writeLoop stamps samples into readings (seq + time) and appends them to
// the store, one write per group of readings that arrived together, so
// every reading reaches the operating system before the next is taken
// (a SIGKILL loses nothing). It fsyncs at most every sync_interval (0:
// after every group), which bounds what a power cut can lose.
func (a *Agent) writeLoop(samples <-chan scheduler.Sample) {
	interval := a.cfg.Spool.SyncInterval.D()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false
	var recs []spool.Record
	for {
		select {
		case s, ok := <-samples:
			if !ok {
				a.sync()
				return
			}
			recs = append(recs[:0], a.record(s))
		drain:
			for len(recs) < maxGroup {
				select {
				case s, ok := <-samples:
					if !ok {
						break drain // the outer loop sees the close
					}
					recs = append(recs, a.record(s))
				default:
					break drain
				}
			}
			a.store.Append(recs)
			a.head.Store(recs[len(recs)-1].Seq)
			a.wake()
			switch {
			case interval == 0:
				a.sync()
			case !armed:
				timer.Reset(interval)
				armed = true
			}
		case <-timer.C:
			armed = false
			a.sync()
		}
	}
}

// record stamps a sample: seq, UTC time, and the topic it will go to.
func (a *Agent) record(s scheduler.Sample) spool.Record {
	n, err := a.seq.Next()
	if err != nil {
		a.log.Error("cannot persist the sequence counter: numbers may repeat after a reboot", "err", err)
	}
	a.taken.Add(1) // health readings included: taken and published compare
	r := reading.Reading{Seq: n, Sensor: s.Sensor, Driver: s.Driver, Time: s.Time.UTC(), Values: s.Values,
		Type: s.Type, Error: s.Error, LastSuccess: s.LastSuccess, ClockUnsynced: !a.clockNow()}
	topic := a.topics[s.Sensor]
	data := make([]byte, 0, len(topic)+1+160)
	data = append(append(data, topic...), '\n')
	return spool.Record{Seq: n, Data: r.AppendJSON(data)}
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

// SplitRecord returns a record's topic and reading JSON.
func SplitRecord(data []byte) (topic string, js []byte, ok bool) {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		return "", nil, false
	}
	return string(data[:i]), data[i+1:], true
}

func (a *Agent) sync() {
	synced, err := a.store.Sync()
	if err != nil {
		a.log.Error("spool sync failed: readings since the last sync may be lost in a power cut", "err", err)
		return
	}
	if synced > a.synced.Load() {
		a.synced.Store(synced)
		// The power-cut test reads this line: every seq up to
		// `through` must survive.
		a.log.Debug("spool synced", "through", synced)
	}
}
