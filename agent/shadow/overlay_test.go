package shadow

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/config"
)

// baseFile anchors the first sensor's limits and uses them in the
// second: a change to one through desired state must not reach the other.
const baseFile = `device_id: pi-1
state_dir: ${STATE}
endpoint: {host: abc-ats.iot.eu-west-1.amazonaws.com, cert_file: /c, key_file: /k}
publish:
  flush_interval: 10s
sensors:
  - name: air
    driver: sim
    interval: 1s
    limits: &lim {temperature_c: {min: -40, max: 85}, humidity_pct: {min: 0, max: 100}}
  - name: soil
    driver: sim
    interval: 1s
    limits: *lim
`

func env(k string) (string, bool) {
	if k == "STATE" {
		return "/var/lib/x", true
	}
	return "", false
}

func desired(t *testing.T, js string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func sensor(cfg *config.Config, name string) *config.Sensor {
	for i := range cfg.Sensors {
		if cfg.Sensors[i].Name == name {
			return &cfg.Sensors[i]
		}
	}
	return nil
}

func TestOverlayApplies(t *testing.T) {
	cfg, err := Overlay([]byte(baseFile), "c.yaml", desired(t, `{
	  "log_level": "debug",
	  "publish": {"flush_interval": "30s", "max_readings": 100, "max_rate": 2.5},
	  "sensors": {"air": {"interval": "5s", "limits": {"temperature_c": {"min": -10, "max": 50}},
	                      "calibrate": {"temperature_c": {"offset": -0.5}}}}}`), env)
	if err != nil {
		t.Fatal(err)
	}
	air, soil := sensor(cfg, "air"), sensor(cfg, "soil")
	switch {
	case cfg.File != "c.yaml", cfg.StateDir != "/var/lib/x", cfg.LogLevel != "debug":
		t.Errorf("file %q, state_dir %q, log_level %q", cfg.File, cfg.StateDir, cfg.LogLevel)
	case cfg.Publish.FlushInterval.D() != 30*time.Second || cfg.Publish.MaxReadings != 100 || cfg.Publish.MaxRate != 2.5:
		t.Errorf("publish %+v", cfg.Publish)
	case air.Interval.D() != 5*time.Second || soil.Interval.D() != time.Second:
		t.Errorf("intervals air %s soil %s, want 5s and the file's 1s", air.Interval, soil.Interval)
	case air.Limits["temperature_c"].Min != -10 || air.Limits["humidity_pct"].Max != 100:
		t.Errorf("air limits %+v: want temperature_c from desired, humidity_pct from the file", air.Limits)
	case soil.Limits["temperature_c"].Min != -40:
		t.Errorf("soil limits %+v: the anchored entry's change leaked into the one merging it", soil.Limits)
	case air.Calibrate["temperature_c"].Offset != -0.5:
		t.Errorf("air calibrate %+v", air.Calibrate)
	}
	cfg, err = Overlay([]byte(baseFile), "c.yaml", desired(t, `{"sensors": {"soil": {"enabled": false}}}`), env)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sensors) != 1 || cfg.Sensors[0].Name != "air" || len(cfg.Disabled) != 1 || cfg.Disabled[0] != "soil" {
		t.Errorf("soil disabled: sensors %d, disabled %v", len(cfg.Sensors), cfg.Disabled)
	}
}

func TestOverlayRefuses(t *testing.T) {
	tests := []struct {
		name, desired string
		want          []string
	}{
		{"endpoint", `{"endpoint": {"host": "evil.example"}}`,
			[]string{"desired.endpoint: not settable remotely (a wrong endpoint, certificate or proxy would cut the device off for good); change it in the config file on the device"}},
		{"state_dir and spool", `{"state_dir": "/tmp", "spool": {"max_bytes": "1MiB"}}`,
			[]string{"desired.spool: not settable remotely", "desired.state_dir: not settable remotely"}},
		{"unknown top key", `{"colour": "red"}`, []string{"desired.colour: unknown or not settable remotely; settable: log_level, publish, sensors"}},
		{"publish topic", `{"publish": {"topic": "x"}}`, []string{"desired.publish.topic: not settable remotely; settable here: flush_interval, max_readings, max_rate"}},
		{"sensor driver", `{"sensors": {"air": {"driver": "bme280"}}}`, []string{"desired.sensors.air.driver: not settable remotely; settable here: calibrate, enabled, interval, limits"}},
		{"unknown sensor", `{"sensors": {"door": {"interval": "1s"}}}`, []string{"desired.sensors.door: the config file has no sensor named door (it has: air, soil)"}},
		{"sensors not an object", `{"sensors": ["air"]}`, []string{"desired.sensors: want an object of sensor names"}},
		{"wrong type", `{"publish": {"max_readings": "lots"}}`, []string{"desired: publish.max_readings:"}},
		{"fraction for an integer", `{"publish": {"max_readings": 1.5}}`, []string{"desired: publish.max_readings: 1.5: want a whole number"}},
		{"bad duration", `{"sensors": {"air": {"interval": "soon"}}}`, []string{"desired: sensors[0].interval:"}},
		{"zero interval", `{"sensors": {"air": {"interval": "0s"}}}`, []string{"desired: sensors[0].interval: is 0 or empty"}},
		{"bad log level", `{"log_level": "loud"}`, []string{`desired: log_level: "loud": want debug, info, warn or error`}},
		{"unknown limit key", `{"sensors": {"air": {"limits": {"temperature_c": {"low": 1}}}}}`, []string{"desired: sensors[0].limits.temperature_c.low: unknown key"}},
		{"every sensor disabled", `{"sensors": {"air": {"enabled": false}, "soil": {"enabled": false}}}`, []string{"desired: sensors: every sensor has enabled: false"}},
		{"environment", `{"log_level": "${STATE}"}`, []string{`desired.log_level: "${STATE}": ${...} is not expanded in desired state`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Overlay([]byte(baseFile), "c.yaml", desired(t, tt.desired), env)
			if err == nil {
				t.Fatalf("accepted %s", tt.desired)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "desired state:") {
				t.Errorf("error %q shows the merged text's line numbers", err)
			}
		})
	}
}
