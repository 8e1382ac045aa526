package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/sensor-agent/sensor-agent/sensors"
)

// sensors checks the entries: names, intervals, limits, calibration and
// each driver's own options.
func (v *validator) sensors(list []Sensor) {
	if len(list) == 0 {
		v.at("sensors", "no sensors configured: add at least one entry with name and driver (see configs/example.yaml)")
		return
	}
	names := map[string]int{}
	for i := range list {
		s := &list[i]
		path := fmt.Sprintf("sensors[%d]", i)
		if s.Name == "" {
			v.at(path+".name", "missing required key: every sensor needs a unique name")
		} else if !nameRE.MatchString(s.Name) {
			v.at(path+".name", "%q may only hold letters, digits and _ . : - (it becomes part of the topic)", s.Name)
		} else if prev, dup := names[s.Name]; dup {
			v.at(path+".name", "%q is already used by sensors[%d]: names must be unique", s.Name, prev)
		}
		names[s.Name] = i
		if s.Driver == "" {
			v.at(path+".driver", "missing required key: one of %s", strings.Join(sensors.Names(), ", "))
		}
		// Only a key left out gets its default: a 0 the user wrote (or an
		// empty value) is a mistake, not a request for 30s.
		if _, set := v.d.lines[path+".interval"]; set && s.Interval == 0 {
			v.at(path+".interval", "is 0 or empty: give a positive duration such as 30s, or leave the key out for the default %s", DefaultInterval)
		} else if s.Interval == 0 {
			s.Interval = Duration(DefaultInterval)
		}
		if _, set := v.d.lines[path+".timeout"]; set && s.Timeout == 0 {
			v.at(path+".timeout", "is 0 or empty: give a positive duration such as 5s, or leave the key out for the default (the interval, at most 10s)")
		} else if s.Timeout == 0 {
			s.Timeout = Duration(min(s.Interval.D(), 10*time.Second))
		}
		for k, r := range s.Limits {
			if r.Min >= r.Max {
				v.at(path+".limits."+k, "min %g must be below max %g", r.Min, r.Max)
			}
		}
		for k, c := range s.Calibrate {
			if c.Scale != nil && *c.Scale == 0 {
				v.at(path+".calibrate."+k+".scale", "0 would erase the value; leave scale out for 1")
			}
			if c.Rename != "" && !sensors.ValueName.MatchString(c.Rename) {
				v.at(path+".calibrate."+k+".rename", "%q: use lowercase letters, digits and _ ending in a unit, e.g. soil_temperature_c", c.Rename)
			}
		}
		if s.Mux != nil {
			if err := s.Mux.Validate(); err != nil {
				v.at(path+".mux", "%v", err)
			}
		}
		if s.Opts != nil {
			if val, ok := s.Opts.(interface{ Validate() error }); ok {
				if err := val.Validate(); err != nil {
					v.at(path, "%s: %v", s.Driver, err)
				}
			}
		}
	}
}

// enabledOnly moves the sensors with enabled: false out of Sensors.
func (v *validator) enabledOnly(c *Config) {
	kept := c.Sensors[:0]
	for _, s := range c.Sensors {
		if s.Enabled != nil && !*s.Enabled {
			c.Disabled = append(c.Disabled, s.Name)
			continue
		}
		kept = append(kept, s)
	}
	c.Sensors = kept
	if len(c.Sensors) == 0 && len(c.Disabled) > 0 {
		v.at("sensors", "every sensor has enabled: false: enable at least one, or the agent would only idle")
	}
}

// Common returns the settings applied around the driver.
func (s *Sensor) Common() sensors.Common {
	return sensors.Common{Limits: s.Limits, Calibrate: s.Calibrate, Mux: s.Mux}
}
