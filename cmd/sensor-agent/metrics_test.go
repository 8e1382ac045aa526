package main

// /metrics as Prometheus reads it: the text written from a snapshot is
// parsed with prometheus/common's parser and checked family by family.

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// parseMetrics parses text in the exposition format, failing the test on
// any error.
func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	return fams
}

// metricValue is the value of the sample of family name whose labels
// include want (name, value pairs); ok false when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func testMetricsInput() metricsInput {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	return metricsInput{
		Version: `v1.3.0-"quoted"\path` + "\nline",
		Snap: agent.Snapshot{
			Time: now, ClockSynced: true,
			Certificate: &agent.Certificate{NotAfter: time.Date(2027, 11, 10, 0, 0, 0, 0, time.UTC)},
			Sensors: []agent.SensorSnapshot{
				{Name: "air", Healthy: true, LastReading: now.Add(-time.Second),
					Values: map[string]float64{"temperature_c": 23.35, "humidity_pct": 63.5}},
				{Name: "door", Healthy: false, ConsecutiveErrors: 4, ReadErrors: 9, LastError: "gpio: read"},
			},
			Spool: agent.SpoolSnapshot{Pending: 12, InMemory: 2, DiskBytes: 4096, Oldest: now.Add(-90 * time.Second),
				Dropped: map[string]uint64{"spool full": 5}},
		},
		Stats: agent.Stats{ReadingsTaken: 100, ReadingsPublished: 88, BatchesPublished: 9, BytesPublished: 12345,
			PublishErrors: 3, ReadErrors: 9, DeadLettered: 1, LastPublish: now.Add(-2 * time.Second)},
		Publish: agent.PublishMetrics{
			Latency:      agent.Histogram{Cumulative: [len(agent.LatencyBuckets)]uint64{1, 2, 5, 9, 10, 10, 10, 10, 12}, Count: 13, Sum: 42.5},
			ErrorsByKind: map[string]int64{publisher.Retry.String(): 2, publisher.Auth.String(): 1, publisher.Permanent.String(): 0},
		},
	}
}

func TestMetricsText(t *testing.T) {
	in := testMetricsInput()
	var b bytes.Buffer
	writeMetrics(&b, in)
	fams := parseMetrics(t, b.String())
	for name, f := range fams {
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sensor_agent_build_info", []string{"version", in.Version}, 1},
		{"sensor_agent_healthy", nil, 0},
		{"sensor_agent_clock_synced", nil, 1},
		{"sensor_agent_certificate_expiry_timestamp_seconds", nil, float64(in.Snap.Certificate.NotAfter.Unix())},
		{"sensor_agent_readings_taken_total", nil, 100},
		{"sensor_agent_readings_published_total", nil, 88},
		{"sensor_agent_readings_dropped_total", []string{"reason", "spool full"}, 5},
		{"sensor_agent_readings_dropped_total", []string{"reason", "memory full"}, 0},
		{"sensor_agent_readings_dead_lettered_total", nil, 1},
		{"sensor_agent_read_errors_total", nil, 9},
		{"sensor_agent_messages_published_total", nil, 9},
		{"sensor_agent_published_bytes_total", nil, 12345},
		{"sensor_agent_publish_errors_total", []string{"kind", "retry"}, 2},
		{"sensor_agent_publish_errors_total", []string{"kind", "auth"}, 1},
		{"sensor_agent_publish_errors_total", []string{"kind", "permanent"}, 0},
		{"sensor_agent_last_publish_success_timestamp_seconds", nil, float64(in.Stats.LastPublish.Unix())},
		{"sensor_agent_spool_bytes", nil, 4096},
		{"sensor_agent_spool_pending_readings", nil, 12},
		{"sensor_agent_spool_memory_readings", nil, 2},
		{"sensor_agent_spool_oldest_age_seconds", nil, 90},
		{"sensor_agent_spool_memory_mode", nil, 0},
		{"sensor_agent_sensor_healthy", []string{"sensor", "air"}, 1},
		{"sensor_agent_sensor_healthy", []string{"sensor", "door"}, 0},
		{"sensor_agent_sensor_consecutive_errors", []string{"sensor", "door"}, 4},
		{"sensor_agent_sensor_read_errors_total", []string{"sensor", "door"}, 9},
		{"sensor_agent_sensor_last_reading_timestamp_seconds", []string{"sensor", "air"}, float64(in.Snap.Sensors[0].LastReading.Unix())},
		{"sensor_agent_sensor_value", []string{"sensor", "air", "value", "temperature_c"}, 23.35},
		{"sensor_agent_sensor_value", []string{"sensor", "air", "value", "humidity_pct"}, 63.5},
	} {
		got, ok := metricValue(fams, c.name, c.labels...)
		if !ok || got != c.want {
			t.Errorf("%s%q = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := metricValue(fams, "sensor_agent_sensor_last_reading_timestamp_seconds", "sensor", "door"); ok {
		t.Error("door never gave a reading but has a last-reading time")
	}
	h := fams["sensor_agent_publish_duration_seconds"].GetMetric()[0].GetHistogram()
	bks := h.GetBucket()
	if h.GetSampleCount() != 13 || h.GetSampleSum() != 42.5 || len(bks) != len(agent.LatencyBuckets)+1 {
		t.Fatalf("histogram: %v", h)
	}
	if last := bks[len(bks)-1]; !math.IsInf(last.GetUpperBound(), 1) || last.GetCumulativeCount() != 13 {
		t.Errorf("+Inf bucket: %v", last)
	}
	for i, bk := range bks[:len(bks)-1] {
		if bk.GetUpperBound() != agent.LatencyBuckets[i] || bk.GetCumulativeCount() != in.Publish.Latency.Cumulative[i] {
			t.Errorf("bucket %d: %v", i, bk)
		}
	}
}

// TestMetricsTextEmpty: an agent that has done nothing yet, without a
// certificate, still gives a text the parser takes.
func TestMetricsTextEmpty(t *testing.T) {
	var b bytes.Buffer
	writeMetrics(&b, metricsInput{Version: "dev"})
	fams := parseMetrics(t, b.String())
	if _, ok := fams["sensor_agent_certificate_expiry_timestamp_seconds"]; ok {
		t.Error("a certificate expiry without a certificate")
	}
	if v, ok := metricValue(fams, "sensor_agent_healthy"); !ok || v != 1 {
		t.Errorf("healthy = %v %v, want 1", v, ok)
	}
	if v, ok := metricValue(fams, "sensor_agent_spool_oldest_age_seconds"); !ok || v != 0 {
		t.Errorf("oldest age = %v %v, want 0", v, ok)
	}
}

func TestMetricsFormatValue(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{0, "0"}, {1.5, "1.5"}, {1e21, "1e+21"}, {math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"}} {
		if got := formatValue(c.v); got != c.want {
			t.Errorf("formatValue(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}
