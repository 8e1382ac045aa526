package sensors

import (
	"path/filepath"
	"strings"
)

// Helpers of the drivers that read kernel files under sysfs (cpu_thermal,
// ds18b20), for errors that list what is present.

// baseNames returns the last element of each path.
func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// listOrNone joins names with commas, or says none.
func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
