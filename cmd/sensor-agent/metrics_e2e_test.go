package main

// http.listen against the real binary: /metrics scraped and parsed as
// Prometheus would, its counts held against what the emulator received;
// /healthz healthy, then failing with the endpoint down across a reload.

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// scrape GETs url and returns the status, the Content-Type and the body.
func scrape(t *testing.T, ctx context.Context, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// scrapeUntil scrapes /metrics until ok says it shows what the test waits
// for, and returns the families.
func scrapeUntil(t *testing.T, ctx context.Context, p *proc, base, what string, ok func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	for {
		code, ctype, body := scrape(t, ctx, base+"/metrics")
		if code != http.StatusOK || ctype != metricsContentType {
			t.Fatalf("/metrics: %d %q\n%s", code, ctype, body)
		}
		fams := parseMetrics(t, body)
		if ok(fams) {
			return fams
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/metrics never showed %s; last:\n%s\nagent's stderr:\n%s", what, body, p.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	v, _ := metricValue(fams, name, labels...)
	return v
}

func TestMetricsE2E(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	const maxReadings = 7
	cfg := agentConfig{device: "pi-metrics", addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
		maxReadings: maxReadings, flushInterval: "100ms", sensors: twoSimSensors,
		extra: "http:\n  listen: \"127.0.0.1:0\"\n"}.write(t)
	from := time.Now()
	p := startEnv(t, ctx, nil, []string{"RUNTIME_DIRECTORY="}, "run", "-config", cfg)
	base := "http://" + p.waitOutput(ctx, p.stderr, regexp.MustCompile(`msg="serving the live page, /metrics and /healthz" addr=(\S+)`))[1]
	if strings.Contains(p.stderr.String(), "reachable from the network") {
		t.Errorf("a loopback listener warned it is reachable from the network:\n%s", p.stderr)
	}

	// twoSimSensors take 42 readings, then stop: wait for all to be
	// published, so the counts hold still while compared.
	fams := scrapeUntil(t, ctx, p, base, "42 readings taken and published", func(f map[string]*dto.MetricFamily) bool {
		return metric(f, "sensor_agent_readings_taken_total") == 42 && metric(f, "sensor_agent_readings_published_total") == 42
	})
	msgs := srv.Messages()
	got := decodeMessages(t, msgs, "pi-metrics", "batch", maxReadings, from, time.Now())
	if pub := metric(fams, "sensor_agent_readings_published_total"); int(pub) != len(got) {
		t.Errorf("readings_published_total %v, the emulator received %d readings", pub, len(got))
	}
	if n := metric(fams, "sensor_agent_messages_published_total"); int(n) != len(msgs) {
		t.Errorf("messages_published_total %v, the emulator received %d messages", n, len(msgs))
	}
	if h := fams["sensor_agent_publish_duration_seconds"].GetMetric()[0].GetHistogram(); int(h.GetSampleCount()) != srv.Requests() || h.GetSampleSum() <= 0 {
		t.Errorf("publish_duration_seconds: %d requests timed (sum %vs), the emulator had %d", h.GetSampleCount(), h.GetSampleSum(), srv.Requests())
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sensor_agent_build_info", []string{"version", e2eVersion}, 1},
		{"sensor_agent_healthy", nil, 1},
		{"sensor_agent_spool_pending_readings", nil, 0},
		{"sensor_agent_publish_errors_total", []string{"kind", "retry"}, 0},
		{"sensor_agent_sensor_healthy", []string{"sensor", "air"}, 1},
		{"sensor_agent_readings_dropped_total", []string{"reason", "spool full"}, 0},
	} {
		if v, ok := metricValue(fams, c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%q = %v (found %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if _, ok := metricValue(fams, "sensor_agent_sensor_value", "sensor", "air", "value", "temperature_c"); !ok {
		t.Error("no sensor_agent_sensor_value for air's temperature_c")
	}
	if exp := metric(fams, "sensor_agent_certificate_expiry_timestamp_seconds"); exp < float64(time.Now().Unix()) {
		t.Errorf("certificate expiry %v is not in the future", exp)
	}
	if code, _, body := scrape(t, ctx, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q, want 200 ok", code, body)
	}

	// The endpoint goes down; a reload starts the sensors again (the
	// listener is handed to the new agent), and their publishes fail.
	if err := srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	p.waitOutput(ctx, p.stderr, regexp.MustCompile(`msg="config reloaded"`))
	for {
		code, _, body := scrape(t, ctx, base+"/healthz")
		if code == http.StatusServiceUnavailable && strings.HasPrefix(body, "publishing failing: ") {
			break
		}
		if code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Fatalf("/healthz: %d %q", code, body)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/healthz never said publishing fails; last %d %q\nstderr:\n%s", code, body, p.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	scrapeUntil(t, ctx, p, base, "a retry error, nothing more published", func(f map[string]*dto.MetricFamily) bool {
		return metric(f, "sensor_agent_publish_errors_total", "kind", "retry") > 0 &&
			metric(f, "sensor_agent_healthy") == 0 && metric(f, "sensor_agent_readings_published_total") == 0
	})
	p.terminate()
}

// TestMetricsNonLoopbackWarns: a listener on every interface is allowed,
// and said to be reachable from the network.
func TestMetricsNonLoopbackWarns(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	cfg := agentConfig{device: "pi-metrics", addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
		maxReadings: 50, flushInterval: "100ms", sensors: twoSimSensors, extra: "http:\n  listen: \":0\"\n"}.write(t)
	r := sensorAgent(t, ctx, nil, "run", "-config", cfg, "-exit-when-idle")
	if r.code != 0 || !regexp.MustCompile(`level=WARN msg="http.listen is not a loopback address: the live page, /metrics and /healthz are reachable from the network, without authentication" addr=\S+`).MatchString(r.stderr) {
		t.Errorf("exit %d, want 0 and a warning\n%s", r.code, r.stderr)
	}
}
