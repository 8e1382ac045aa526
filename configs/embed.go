// Package configs holds the example configurations. demo.yaml is embedded
// in the binary so `sensor-agent demo` runs with nothing else on disk.
package configs

import _ "embed"

// Demo is configs/demo.yaml.
//
//go:embed demo.yaml
var Demo []byte

// Example is configs/example.yaml.
//
//go:embed example.yaml
var Example []byte

// Drivers is configs/drivers.yaml: one entry per driver.
//
//go:embed drivers.yaml
var Drivers []byte
