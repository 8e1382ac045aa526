package configs_test

import (
	"testing"

	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/configs"
	"github.com/sensor-agent/sensor-agent/sensors"
)

// The shipped examples must stay valid as the schema changes.
func TestExamplesParse(t *testing.T) {
	vars := map[string]string{"SENSOR_AGENT_DEMO_DIR": "/tmp/demo", "SENSOR_AGENT_DEMO_PORT": "4443"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	// drivers.yaml is only a sensors list; give it the rest.
	drivers := append([]byte("endpoint: {host: h, cert_file: c, key_file: k}\n"), configs.Drivers...)
	for name, data := range map[string][]byte{"example.yaml": configs.Example, "demo.yaml": configs.Demo, "drivers.yaml": drivers} {
		c, err := config.Parse(name, data, lookup)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(c.Sensors) == 0 || c.Spool.Dir == "" {
			t.Errorf("%s: parsed to %+v", name, c)
		}
	}
}

// Every registered driver has an entry in drivers.yaml.
func TestDriversYAMLCoversEveryDriver(t *testing.T) {
	c, err := config.Parse("drivers.yaml", append([]byte("endpoint: {host: h, cert_file: c, key_file: k}\n"), configs.Drivers...),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, s := range c.Sensors {
		have[s.Driver] = true
	}
	for _, d := range sensors.Names() {
		if !have[d] {
			t.Errorf("driver %s has no entry in configs/drivers.yaml", d)
		}
	}
}
