package sensors

import "strings"

// units maps a value name's suffix (the naming rule: lowercase snake_case
// ending in the unit) to the unit a person reads.
var units = []struct{ suffix, unit string }{
	{"_per_s", "/s"}, {"_c", "°C"}, {"_pct", "%"}, {"_hpa", "hPa"}, {"_lux", "lx"}, {"_ppm", "ppm"},
	{"_ppb", "ppb"}, {"_ma", "mA"}, {"_v", "V"}, {"_a", "A"}, {"_w", "W"}, {"_kg", "kg"}, {"_g", "g"},
	{"_mm", "mm"}, {"_kmh", "km/h"}, {"_hz", "Hz"},
}

// Unit splits a value name into what it measures and its unit:
// "temperature_c" is "temperature" in "°C"; a name without a known unit
// suffix comes back whole, with unit "".
func Unit(name string) (base, unit string) {
	for _, u := range units {
		if b, ok := strings.CutSuffix(name, u.suffix); ok && b != "" {
			return b, u.unit
		}
	}
	return name, ""
}
