//go:build linux

package main

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// collector keeps, per message the emulator accepted, when it arrived, its
// size and the timestamps of the readings it carries.
type collector struct {
	mu   sync.Mutex
	msgs []arrival
}

type arrival struct {
	at       time.Time
	size     int
	readings []time.Time
}

func (c *collector) add(m iotemu.Message) {
	a := arrival{at: m.Received, size: len(m.Payload), readings: readingTimes(m.Payload)}
	c.mu.Lock()
	c.msgs = append(c.msgs, a)
	c.mu.Unlock()
}

func (c *collector) reset() {
	c.mu.Lock()
	c.msgs = nil
	c.mu.Unlock()
}

// window counts the messages that arrived in [t0, t1), the readings they
// carry and the messages AWS would bill for them.
func (c *collector) window(t0, t1 time.Time) (readings, messages, metered, payload int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.msgs {
		if !a.at.Before(t0) && a.at.Before(t1) {
			readings += len(a.readings)
			messages++
			metered += meteredMessages(a.size)
			payload += a.size
		}
	}
	return
}

// arrivedAfter reports whether a message arrived after t.
func (c *collector) arrivedAfter(t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs) > 0 && c.msgs[len(c.msgs)-1].at.After(t)
}

// readingTimes understands the three payloads the harness produces: the
// agent's batch ({"readings":[{"time":…}]}) and single ({"time":…})
// formats, which the article client also uses, and Telegraf's JSON batch
// ({"metrics":[{"timestamp": ms}]}, json_timestamp_units = "1ms").
func readingTimes(payload []byte) []time.Time {
	var p struct {
		Readings []struct {
			Time time.Time `json:"time"`
		} `json:"readings"`
		Time    *time.Time `json:"time"`
		Metrics []struct {
			Timestamp int64 `json:"timestamp"`
		} `json:"metrics"`
		Timestamp int64 `json:"timestamp"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return nil
	}
	var ts []time.Time
	for _, r := range p.Readings {
		ts = append(ts, r.Time)
	}
	for _, m := range p.Metrics {
		ts = append(ts, time.UnixMilli(m.Timestamp))
	}
	if p.Time != nil {
		ts = append(ts, *p.Time)
	}
	if p.Timestamp != 0 {
		ts = append(ts, time.UnixMilli(p.Timestamp))
	}
	return ts
}
