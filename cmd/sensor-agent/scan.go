package main

import (
	"context"
	"fmt"
	"io"

	"github.com/sensor-agent/sensor-agent/sensors"
)

// cmdScan probes an I²C bus like i2cdetect, names the parts it recognises
// and prints a `sensors:` snippet to paste into the config. It only reads.
func cmdScan(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scan", stderr)
	bus := fs.String("bus", "1", `I²C bus: "1", "I2C1" or "/dev/i2c-1"`)
	sysfs := fs.String("sysfs", "/sys", "root of the sysfs tree, for 1-wire sensors")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := newLogger(stderr, "warn")
	ow := sensors.ScanOneWire(*sysfs)
	env := sensors.DefaultEnv("scan", log)
	b, err := env.I2C(*bus)
	if err != nil {
		if len(ow) > 0 {
			sensors.WriteScan(stdout, "", nil, ow)
		}
		return fmt.Errorf("i2c bus %s: %w", *bus, err)
	}
	sensors.WriteScan(stdout, *bus, sensors.ScanI2C(b), ow)
	return nil
}
