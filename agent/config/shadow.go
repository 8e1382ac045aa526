package config

import (
	"regexp"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
)

// Shadow is the Device Shadow the agent reports its state to and takes
// remote configuration from, over the same HTTPS path as publishing.
type Shadow struct {
	Enabled bool `yaml:"enabled"`
	// Thing is the thing's name in AWS IoT; "" = device_id.
	Thing string `yaml:"thing"`
	// Name is the named shadow; a named one does not clash with a classic
	// shadow the user may keep.
	Name string `yaml:"name"`
	// ReportInterval is the most often a report is sent, unless health
	// changes.
	ReportInterval Duration `yaml:"report_interval"`
	// PollInterval is how often desired state is fetched: HTTPS has no push.
	PollInterval Duration `yaml:"poll_interval"`
}

// The shadow's defaults.
const (
	DefaultShadowName     = "sensor-agent"
	DefaultShadowInterval = 5 * time.Minute
)

// shadowRE is the agent's rule for its shadow's name: AWS IoT's
// (publisher.ValidShadowName) without the $ it also allows.
var shadowRE = regexp.MustCompile(`^[A-Za-z0-9:_-]{1,64}$`)

func (v *validator) shadow(c *Config) {
	s := &c.Shadow
	if s.Thing == "" {
		s.Thing = c.DeviceID
		if s.Enabled && c.DeviceID != "" && !publisher.ValidThingName(c.DeviceID) {
			v.at("shadow.thing", "not set, and device_id %q is no thing name (letters, digits, _ - : only, at most 128): set shadow.thing to the thing's name in AWS IoT", c.DeviceID)
		}
	} else if !publisher.ValidThingName(s.Thing) {
		v.at("shadow.thing", "%q: a thing name holds letters, digits, _ - : only, at most 128", s.Thing)
	}
	if !shadowRE.MatchString(s.Name) {
		v.at("shadow.name", "%q: a shadow name holds letters, digits, _ - : only, 1 to 64 (default %s)", s.Name, DefaultShadowName)
	}
	for _, f := range []struct {
		key string
		d   Duration
	}{{"shadow.report_interval", s.ReportInterval}, {"shadow.poll_interval", s.PollInterval}} {
		if f.d < Duration(time.Second) || f.d > Duration(24*time.Hour) {
			v.at(f.key, "%s: give from 1s to 24h (default 5m); each request is billed", f.d)
		}
	}
}
