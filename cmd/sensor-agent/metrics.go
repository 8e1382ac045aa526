package main

// /metrics: the agent's Snapshot and Stats in the Prometheus text
// exposition format 0.0.4, written by hand (prometheus/client_golang
// would cost more binary size and idle CPU than the budget allows) and
// built only when scraped.

import (
	"bytes"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// metricsContentType is what Prometheus expects of the text format.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// metricsInput is what one scrape shows.
type metricsInput struct {
	Version string
	Snap    agent.Snapshot
	Stats   agent.Stats
	Publish agent.PublishMetrics
}

// dropReasons are shown at 0 before anything is dropped, so a rate() over
// them works from the first scrape.
var dropReasons = []spool.DropReason{spool.DropFull, spool.DropCorrupt, spool.DropLost, spool.DropMemory, spool.DropDeleted}

// expo writes families and samples in the text format.
type expo struct{ b *bytes.Buffer }

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func (e expo) family(name, typ, help string) {
	e.b.WriteString("# HELP " + name + " " + helpEscaper.Replace(help) + "\n")
	e.b.WriteString("# TYPE " + name + " " + typ + "\n")
}

// sample writes one line; labels are name, value pairs.
func (e expo) sample(name string, v float64, labels ...string) {
	e.b.WriteString(name)
	if len(labels) > 0 {
		e.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				e.b.WriteByte(',')
			}
			e.b.WriteString(labels[i] + `="` + labelEscaper.Replace(labels[i+1]) + `"`)
		}
		e.b.WriteByte('}')
	}
	e.b.WriteByte(' ')
	e.b.WriteString(formatValue(v))
	e.b.WriteByte('\n')
}

// one writes a family with a single unlabelled sample.
func (e expo) one(name, typ, help string, v float64) {
	e.family(name, typ, help)
	e.sample(name, v)
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// writeMetrics writes every family to b.
func writeMetrics(b *bytes.Buffer, in metricsInput) {
	e := expo{b}
	e.family("sensor_agent_build_info", "gauge", "The agent's version; always 1.")
	e.sample("sensor_agent_build_info", 1, "version", in.Version, "goversion", runtime.Version())
	e.one("sensor_agent_healthy", "gauge", "1 when the agent is healthy, 0 when degraded (see /healthz for why).",
		bool01(len(in.Snap.Problems()) == 0))
	e.one("sensor_agent_clock_synced", "gauge", "1 when the system clock is synchronised.", bool01(in.Snap.ClockSynced))
	if c := in.Snap.Certificate; c != nil {
		e.one("sensor_agent_certificate_expiry_timestamp_seconds", "gauge",
			"When the device certificate expires, in seconds since the Unix epoch.", unixSeconds(c.NotAfter))
	}
	writeReadingMetrics(e, in)
	writePublishMetrics(e, in)
	writeSpoolMetrics(e, in.Snap)
	writeSensorMetrics(e, in.Snap.Sensors)
}

// writeReadingMetrics: the counters of readings. They count from the
// agent's start, and start again at 0 after a reload (SIGHUP), which
// Prometheus' rate() takes as a counter reset.
func writeReadingMetrics(e expo, in metricsInput) {
	st := in.Stats
	e.one("sensor_agent_readings_taken_total", "counter", "Readings taken from the sensors.", float64(st.ReadingsTaken))
	e.one("sensor_agent_readings_published_total", "counter", "Readings the endpoint accepted.", float64(st.ReadingsPublished))
	e.family("sensor_agent_readings_dropped_total", "counter", "Readings lost before they could be published, by reason.")
	dropped := maps.Clone(in.Snap.Spool.Dropped)
	if dropped == nil {
		dropped = map[string]uint64{}
	}
	for _, r := range dropReasons {
		dropped[r.String()] += 0
	}
	for _, reason := range slices.Sorted(maps.Keys(dropped)) {
		e.sample("sensor_agent_readings_dropped_total", float64(dropped[reason]), "reason", reason)
	}
	e.one("sensor_agent_readings_dead_lettered_total", "counter",
		"Readings the endpoint refused for good, written to the dead-letter file.", float64(st.DeadLettered))
	e.one("sensor_agent_read_errors_total", "counter", "Failed sensor reads, all sensors.", float64(st.ReadErrors))
}

func writePublishMetrics(e expo, in metricsInput) {
	st, pm := in.Stats, in.Publish
	e.one("sensor_agent_messages_published_total", "counter", "Messages the endpoint accepted.", float64(st.BatchesPublished))
	e.one("sensor_agent_published_bytes_total", "counter", "Bytes of message bodies the endpoint accepted.", float64(st.BytesPublished))
	e.family("sensor_agent_publish_errors_total", "counter",
		"Failed publish requests by kind: retry (network, 5xx, throttled), permanent (the message is refused), auth (only a human fixes it).")
	for _, kind := range slices.Sorted(maps.Keys(pm.ErrorsByKind)) {
		e.sample("sensor_agent_publish_errors_total", float64(pm.ErrorsByKind[kind]), "kind", kind)
	}
	if !st.LastPublish.IsZero() {
		e.one("sensor_agent_last_publish_success_timestamp_seconds", "gauge",
			"When a publish last succeeded, in seconds since the Unix epoch.", unixSeconds(st.LastPublish))
	}
	const h = "sensor_agent_publish_duration_seconds"
	e.family(h, "histogram", "Duration of publish requests to the endpoint, failed ones included.")
	for i, le := range agent.LatencyBuckets {
		e.sample(h+"_bucket", float64(pm.Latency.Cumulative[i]), "le", formatValue(le))
	}
	e.sample(h+"_bucket", float64(pm.Latency.Count), "le", "+Inf")
	e.sample(h+"_sum", pm.Latency.Sum)
	e.sample(h+"_count", float64(pm.Latency.Count))
}

func writeSpoolMetrics(e expo, snap agent.Snapshot) {
	sp := snap.Spool
	e.one("sensor_agent_spool_bytes", "gauge", "Bytes the spool takes on disk.", float64(sp.DiskBytes))
	e.one("sensor_agent_spool_pending_readings", "gauge", "Readings waiting to be published, memory included.", float64(sp.Pending))
	e.one("sensor_agent_spool_memory_readings", "gauge", "Of the pending readings, those held only in memory.", float64(sp.InMemory))
	var age float64
	if !sp.Oldest.IsZero() {
		age = max(0, snap.Time.Sub(sp.Oldest).Seconds())
	}
	e.one("sensor_agent_spool_oldest_age_seconds", "gauge", "Age of the oldest pending reading; 0 when none waits.", age)
	e.one("sensor_agent_spool_memory_mode", "gauge", "1 when the spool cannot be written and readings wait in memory.", bool01(sp.MemoryMode))
}

func writeSensorMetrics(e expo, list []agent.SensorSnapshot) {
	e.family("sensor_agent_sensor_healthy", "gauge", "1 when the sensor's last read succeeded.")
	for _, s := range list {
		e.sample("sensor_agent_sensor_healthy", bool01(s.Healthy), "sensor", s.Name)
	}
	e.family("sensor_agent_sensor_consecutive_errors", "gauge", "Failed reads of the sensor since its last success.")
	for _, s := range list {
		e.sample("sensor_agent_sensor_consecutive_errors", float64(s.ConsecutiveErrors), "sensor", s.Name)
	}
	e.family("sensor_agent_sensor_read_errors_total", "counter", "Failed reads of the sensor.")
	for _, s := range list {
		e.sample("sensor_agent_sensor_read_errors_total", float64(s.ReadErrors), "sensor", s.Name)
	}
	e.family("sensor_agent_sensor_last_reading_timestamp_seconds", "gauge",
		"When the sensor last gave a reading, in seconds since the Unix epoch.")
	for _, s := range list {
		if !s.LastReading.IsZero() {
			e.sample("sensor_agent_sensor_last_reading_timestamp_seconds", unixSeconds(s.LastReading), "sensor", s.Name)
		}
	}
	e.family("sensor_agent_sensor_value", "gauge",
		"The sensor's last value; the value label names it with its unit, e.g. temperature_c.")
	for _, s := range list {
		for _, k := range slices.Sorted(maps.Keys(s.Values)) {
			e.sample("sensor_agent_sensor_value", s.Values[k], "sensor", s.Name, "value", k)
		}
	}
}
