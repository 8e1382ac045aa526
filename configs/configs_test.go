package configs_test

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

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

// The README states what the example config costs on AWS; this is where
// the figure comes from. A sensor slower than flush_interval goes out one
// reading per message (its batch comes due before its next reading), a
// faster one once per flush_interval; each message here is far under
// AWS's 5 KB metering step.
func TestExampleBill(t *testing.T) {
	c, err := config.Parse("example.yaml", configs.Example, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Publish.Topic, "{sensor}") {
		t.Fatalf("topic %q: the model below assumes a topic per sensor", c.Publish.Topic)
	}
	const month = 30 * 24 * time.Hour
	flush := c.Publish.FlushInterval.D()
	var msgs int64
	for _, s := range c.Sensors {
		msgs += int64(month / max(s.Interval.D(), flush))
	}
	dollars := float64(msgs) / 1e6 // $1.00 per million messages (us-east-1)
	want := fmt.Sprintf("%s messages a month", thousands(msgs))
	t.Logf("%s, $%.2f", want, dollars)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{want, fmt.Sprintf("$%.2f a month", dollars)} {
		if !bytes.Contains(readme, []byte(w)) {
			t.Errorf("README does not say %q (the example config's AWS bill)", w)
		}
	}
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
