package configs_test

import (
	"testing"

	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/configs"
)

// The shipped examples must stay valid as the schema changes.
func TestExamplesParse(t *testing.T) {
	vars := map[string]string{"SENSOR_AGENT_DEMO_DIR": "/tmp/demo", "SENSOR_AGENT_DEMO_PORT": "4443"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for name, data := range map[string][]byte{"example.yaml": configs.Example, "demo.yaml": configs.Demo} {
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
