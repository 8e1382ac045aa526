package config

import (
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/sensors"
)

const minimal = `
device_id: pi-1
state_dir: /tmp/x
endpoint:
  host: abc-ats.iot.us-west-2.amazonaws.com
  cert_file: c.pem
  key_file: k.pem
sensors:
  - name: demo
    driver: sim
    interval: 100ms
`

func noEnv(string) (string, bool) { return "", false }

func TestParseMinimalDefaults(t *testing.T) {
	c, err := Parse("config.yaml", []byte(minimal), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Endpoint.Port != 443 || c.Endpoint.ALPN != "auto" || c.Endpoint.Timeout.D() != 10*time.Second {
		t.Errorf("endpoint defaults: %+v", c.Endpoint)
	}
	p := c.Publish
	if p.Topic != "sensors/{device}/{sensor}" || p.QoS != 1 || p.Format != "batch" || p.MaxReadings != 500 ||
		p.MaxBytes != 64<<10 || p.FlushInterval.D() != 10*time.Second {
		t.Errorf("publish defaults: %+v", p)
	}
	if c.Spool.Dir != "/tmp/x/spool" || c.Spool.MaxBytes != 64<<20 || c.Spool.SyncInterval.D() != time.Second || p.MaxRate != 20 {
		t.Errorf("spool defaults: %+v, max_rate %v", c.Spool, p.MaxRate)
	}
	s := c.Sensors[0]
	if s.Interval.D() != 100*time.Millisecond || s.Timeout.D() != 100*time.Millisecond {
		t.Errorf("sensor interval/timeout: %v %v", s.Interval, s.Timeout)
	}
	if _, ok := s.Opts.(*sensors.SimOpts); !ok {
		t.Errorf("opts type %T, want *sensors.SimOpts", s.Opts)
	}
}

func TestParseDriverOptions(t *testing.T) {
	c, err := Parse("c.yaml", []byte(minimal+"    count: 7\n    values: [level]\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Sensors[0].Opts.(*sensors.SimOpts)
	if o.Count != 7 || len(o.Values) != 1 || o.Values[0] != "level" || o.Waveform != "sine" {
		t.Errorf("opts = %+v", o)
	}
}

func TestParseSpool(t *testing.T) {
	src := strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\nspool:\n  dir: /data/spool\n  max_bytes: 16MiB\n  sync_interval: 0", 1)
	c, err := Parse("c.yaml", []byte(src), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Spool.Dir != "/data/spool" || c.Spool.MaxBytes != 16<<20 || c.Spool.SyncInterval != 0 {
		t.Errorf("spool = %+v (sync_interval 0 means fsync every batch and must be kept)", c.Spool)
	}
}

func TestParseCommonSensorKeys(t *testing.T) {
	src := minimal + `    limits:
      temperature_c: {min: -10, max: 60}
    calibrate:
      temperature_c: {offset: -0.5, scale: 1.02, rename: air_temperature_c}
      humidity_pct: {offset: 3}
    mux: {address: 0x71, channel: 5}
`
	c, err := Parse("c.yaml", []byte(src), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cm := c.Sensors[0].Common()
	if r := cm.Limits["temperature_c"]; r.Min != -10 || r.Max != 60 {
		t.Errorf("limits = %+v", cm.Limits)
	}
	cal := cm.Calibrate["temperature_c"]
	if cal.Offset != -0.5 || cal.Scale == nil || *cal.Scale != 1.02 || cal.Rename != "air_temperature_c" || cm.Calibrate["humidity_pct"].Offset != 3 {
		t.Errorf("calibrate = %+v", cm.Calibrate)
	}
	if cm.Mux == nil || cm.Mux.Address != 0x71 || cm.Mux.Channel != 5 {
		t.Errorf("mux = %+v", cm.Mux)
	}
}

func TestParseEnv(t *testing.T) {
	env := map[string]string{"HOST": "h-ats.iot.eu-west-1.amazonaws.com", "PORT": "8443"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	src := strings.Replace(minimal, "host: abc-ats.iot.us-west-2.amazonaws.com", "host: ${HOST}\n  port: ${PORT}\n  ca_file: ${CA:-/etc/ca.pem}", 1)
	c, err := Parse("c.yaml", []byte(src), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if c.Endpoint.Host != env["HOST"] || c.Endpoint.Port != 8443 || c.Endpoint.CAFile != "/etc/ca.pem" {
		t.Errorf("endpoint = %+v", c.Endpoint)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the error
	}{
		{"unknown top-level key", minimal + "devcie_id: x\n", []string{"c.yaml:12: devcie_id: unknown key", `did you mean "device_id"`}},
		{"unknown endpoint key", strings.Replace(minimal, "  cert_file:", "  cert: x\n  cert_file:", 1), []string{"c.yaml:6: endpoint.cert: unknown key"}},
		{"unknown driver option", minimal + "    adress: 0x76\n", []string{"c.yaml:12: sensors[0].adress: unknown key", "keys for driver sim:", "interval"}},
		{"misspelled common key in a sensor", minimal + "    intervall: 1s\n", []string{"c.yaml:12: sensors[0].intervall: unknown key (did you mean \"interval\"?)"}},
		{"wrong type", strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\npublish:\n  qos: high", 1), []string{"c.yaml:5: publish.qos:", "wrong type"}},
		{"wrong type in driver option", minimal + "    count: many\n", []string{"c.yaml:12: sensors[0].count:", "wrong type"}},
		{"duration without unit", strings.Replace(minimal, "interval: 100ms", "interval: 30", 1), []string{"c.yaml:11: sensors[0].interval:", "no unit", "30s"}},
		{"bad size", strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\npublish:\n  max_bytes: lots", 1), []string{"c.yaml:5: publish.max_bytes:", "invalid size"}},
		{"fraction for a whole number", strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\npublish:\n  max_readings: 1.5", 1), []string{"c.yaml:5: publish.max_readings: 1.5: want a whole number"}},
		{"size over 128KB", strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\npublish:\n  max_bytes: 256KiB", 1), []string{"publish.max_bytes:", "128KiB"}},
		{"missing host", strings.Replace(minimal, "  host: abc-ats.iot.us-west-2.amazonaws.com\n", "", 1), []string{"c.yaml:4: endpoint.host: missing required key", "describe-endpoint"}},
		{"missing endpoint", "device_id: x\nsensors:\n  - name: a\n    driver: sim\n", []string{"endpoint: missing required section"}},
		{"missing sensors", strings.SplitN(minimal, "sensors:", 2)[0], []string{"sensors: no sensors configured"}},
		{"missing driver", strings.Replace(minimal, "    driver: sim\n", "", 1), []string{"sensors[0].driver: missing required key"}},
		{"unknown driver", strings.Replace(minimal, "driver: sim", "driver: bme281", 1), []string{"c.yaml:10: sensors[0].driver: unknown driver \"bme281\"", `did you mean "bme280"`}},
		{"duplicate sensor name", minimal + "  - name: demo\n    driver: sim\n", []string{"sensors[1].name: \"demo\" is already used"}},
		{"duplicate key", minimal + "device_id: y\n", []string{"c.yaml:12: device_id: duplicate key (first set on line 2)"}},
		{"bad qos", strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\npublish:\n  qos: 2", 1), []string{"c.yaml:5: publish.qos: 2"}},
		{"bad topic placeholder", strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\npublish:\n  topic: a/{thing}", 1), []string{"publish.topic:", "thing"}},
		{"bad alpn", strings.Replace(minimal, "  cert_file: c.pem", "  alpn: yes-please\n  cert_file: c.pem", 1), []string{"endpoint.alpn:", "auto, on or off"}},
		{"host with scheme", strings.Replace(minimal, "host: abc", "host: https://abc", 1), []string{"endpoint.host:", "without https://"}},
		{"unset env var", strings.Replace(minimal, "cert_file: c.pem", "cert_file: ${CERT}", 1), []string{"c.yaml:6: environment variable CERT is not set"}},
		{"spool too small", strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\nspool:\n  max_bytes: 4KiB", 1), []string{"c.yaml:5: spool.max_bytes:", "at least 1MiB"}},
		{"sync interval too long", strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\nspool:\n  sync_interval: 1h", 1), []string{"spool.sync_interval:", "power cut"}},
		{"negative max_rate", strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\npublish:\n  max_rate: -1", 1), []string{"publish.max_rate:"}},
		{"limits min over max", minimal + "    limits: {temperature_c: {min: 5, max: 1}}\n", []string{"c.yaml:12: sensors[0].limits.temperature_c: min 5 must be below max 1"}},
		{"limits unknown key", minimal + "    limits: {temperature_c: {low: 5}}\n", []string{"sensors[0].limits.temperature_c.low: unknown key"}},
		{"calibrate zero scale", minimal + "    calibrate: {level: {scale: 0}}\n", []string{"sensors[0].calibrate.level.scale: 0 would erase"}},
		{"calibrate bad rename", minimal + "    calibrate: {level: {rename: Door State}}\n", []string{"sensors[0].calibrate.level.rename:"}},
		{"mux bad channel", minimal + "    mux: {address: 0x70, channel: 9}\n", []string{"sensors[0].mux: mux.channel: 9"}},
		{"limits not a mapping", minimal + "    limits: [1, 2]\n", []string{"sensors[0].limits: want a mapping"}},
		{"driver validation", minimal + "    count: -1\n", []string{"sensors[0]: sim: count"}},
		{"empty file", "", []string{"the file is empty"}},
		{"not a mapping", "- a\n- b\n", []string{"want a mapping"}},
		{"syntax error", "a: [\n", []string{"c.yaml:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.src), noEnv)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	src := strings.Replace(minimal, "device_id: pi-1", "device_id: pi-1\nfoo: 1\nbar: 2", 1)
	_, err := Parse("c.yaml", []byte(src), noEnv)
	if err == nil || !strings.Contains(err.Error(), "foo") || !strings.Contains(err.Error(), "bar") {
		t.Fatalf("want both unknown keys reported, got %v", err)
	}
}

func TestParseSizeAndDuration(t *testing.T) {
	sizes := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4096", 4096, true}, {"64KiB", 65536, true}, {"1MiB", 1 << 20, true}, {"500KB", 500000, true},
		{"2 GiB", 2 << 30, true}, {"12B", 12, true}, {"-1", 0, false}, {"1.5MiB", 0, false}, {"x", 0, false},
	}
	for _, s := range sizes {
		got, err := ParseSize(s.in)
		if (err == nil) != s.ok || got != s.want {
			t.Errorf("ParseSize(%q) = %d, %v", s.in, got, err)
		}
	}
	durs := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true}, {"1m30s", 90 * time.Second, true}, {"250ms", 250 * time.Millisecond, true},
		{"0", 0, true}, {"30", 0, false}, {"-1s", 0, false}, {"soon", 0, false},
	}
	for _, d := range durs {
		got, err := sensors.ParseDuration(d.in)
		if (err == nil) != d.ok || got != d.want {
			t.Errorf("ParseDuration(%q) = %v, %v", d.in, got, err)
		}
	}
}

// A driver option named like a common sensor key (name, interval...)
// could never be set: the common key would take it.
func TestDriverOptionsDoNotShadowCommonKeys(t *testing.T) {
	common := structFields(sensorType)
	for _, d := range sensors.Drivers() {
		for key := range sensors.OptionKeys(d.NewOpts()) {
			if _, clash := common[key]; clash {
				t.Errorf("driver %s: option %q is also a common sensor key", d.Name, key)
			}
		}
	}
}

func TestParseEndpointProxyAndFallback(t *testing.T) {
	env := map[string]string{"PROXY": "http://alice:s3cr%40t@proxy.corp:3128"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	withEndpoint := func(lines string) string {
		return strings.Replace(minimal, "  cert_file: c.pem", lines+"\n  cert_file: c.pem", 1)
	}
	tests := []struct {
		name         string
		src          string
		wantProxy    string
		wantFallback int
		wantErr      []string
	}{
		{"defaults", minimal, "", 0, nil},
		{"proxy from env and fallback", withEndpoint("  proxy: ${PROXY}\n  fallback_port: 8443"), env["PROXY"], 8443, nil},
		{"https proxy", withEndpoint("  proxy: https://proxy.corp:8443"), "https://proxy.corp:8443", 0, nil},
		{"proxy without scheme", withEndpoint("  proxy: proxy.corp:3128"), "proxy.corp:3128", 0, nil},
		{"socks proxy", withEndpoint("  proxy: socks5://u:hunter2@proxy.corp:1080"), "", 0,
			[]string{"c.yaml:6: endpoint.proxy:", "socks5 proxies are not supported", "u:xxxxx@proxy.corp"}},
		{"bad proxy URL hides the password", withEndpoint("  proxy: http://u:hunter2@proxy corp:3128"), "", 0,
			[]string{"endpoint.proxy:", "proxy URL is not valid", "http://[user:password@]host:port"}},
		{"proxy with a path", withEndpoint("  proxy: http://u:hunter2@proxy.corp:3128/x"), "", 0,
			[]string{"endpoint.proxy:", "no path"}},
		{"fallback same as port", withEndpoint("  fallback_port: 443"), "", 0,
			[]string{"c.yaml:6: endpoint.fallback_port: 443", "e.g. 8443"}},
		{"fallback out of range", withEndpoint("  fallback_port: 70000"), "", 0, []string{"endpoint.fallback_port: 70000"}},
		{"fallback negative", withEndpoint("  fallback_port: -1"), "", 0, []string{"endpoint.fallback_port: -1"}},
		{"fallback wrong type", withEndpoint("  fallback_port: auto"), "", 0, []string{"endpoint.fallback_port:", "wrong type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("c.yaml", []byte(tt.src), lookup)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if c.Endpoint.Proxy != tt.wantProxy || c.Endpoint.FallbackPort != tt.wantFallback {
					t.Errorf("proxy %q fallback_port %d, want %q and %d", c.Endpoint.Proxy, c.Endpoint.FallbackPort, tt.wantProxy, tt.wantFallback)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the proxy password", err)
			}
		})
	}
}
