package sensors

import (
	"fmt"
	"math"
	"sort"
	"strconv"
)

// Rounding and range checks of readings, shared by every driver.

// round2 rounds to 2 decimals: finer digits are noise for every sensor here
// and only bloat the published JSON.
func round2(v float64) float64 {
	return math.Round(v*100) / 100
}

// roundSig rounds v to digits significant digits: the ADCs here resolve
// 12 to 24 bits, and float noise beyond that only bloats the JSON.
func roundSig(v float64, digits int) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', digits, 64), 64)
	if err != nil {
		return v
	}
	return r
}

// checkRange rejects physically implausible readings: periph drivers turn
// bus glitches and dead sensors into numbers rather than errors.
func checkRange(name string, v, lo, hi float64) error {
	if math.IsNaN(v) || v < lo || v > hi {
		return fmt.Errorf("implausible %s %g (valid %g..%g)", name, v, lo, hi)
	}
	return nil
}

// checkLimits checks every value that has a limit, in name order so the
// error is deterministic. The agent checks the (user-adjustable) limits
// again; drivers check the datasheet ranges so that garbage never leaves
// them as data.
func checkLimits(v Values, limits map[string]Range) error {
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if r, ok := limits[k]; ok {
			if err := checkRange(k, v[k], r.Min, r.Max); err != nil {
				return err
			}
		}
	}
	return nil
}
