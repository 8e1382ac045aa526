package sensors

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"periph.io/x/devices/v3/aht20"
)

// AHT20Opts configures the aht20 driver (ASAIR AHT20 temperature and
// humidity sensor).
//
// Its address is fixed at 0x38 by the chip. The address key exists so
// that a config copied from another sensor gets a clear error, not a
// silent read from the wrong part.
type AHT20Opts I2COpts

// DefaultAHT20Opts are the defaults NewOpts returns for aht20.
var DefaultAHT20Opts = AHT20Opts(defaultI2COpts(aht20Chip))

// target implements i2cOptions.
func (o *AHT20Opts) target() (string, int) { return o.Bus, o.Address }

// Validate implements Validator.
func (o *AHT20Opts) Validate() error {
	return checkI2C(o.Bus, o.Address, aht20Chip, "address: %#x is not possible; the AHT20's address is fixed at 0x38 (remove the key, or use a pca9548 mux for a second AHT20)")
}

// aht20Chip: the AHT20 has no ID register that is safe to read.
var aht20Chip = &I2CChip{Addrs: []uint16{0x38}, What: "probably an Aosong AHT20 (address 0x38)"}

// aht20Limits are the datasheet's operating ranges. The formula's floor,
// raw 0 (an all-zero frame), decodes to -50 °C and is rejected by them.
var aht20Limits = map[string]Range{
	TemperatureC: {Min: -40, Max: 85},
	HumidityPct:  {Min: 0, Max: 100},
}

func init() {
	Register(Driver{
		Name:    "aht20",
		Doc:     "ASAIR AHT20 on I²C (fixed address 0x38): temperature_c, humidity_pct",
		NewOpts: defaults(DefaultAHT20Opts),
		Open:    openAHT20,
		Limits:  aht20Limits,
		I2C:     aht20Chip,
	})
}

// aht20Sensor wraps periph's aht20.Dev.
//
// periph quirk: aht20.Dev.Halt only stops SenseContinuous, and deadlocks
// when that goroutine is blocked on its unbuffered channel (Halt waits for
// the goroutine while holding the mutex the goroutine needs). We never
// call SenseContinuous, and Close does not call Halt either: the AHT20
// goes idle by itself after each measurement, so there is nothing to power
// down.
//
// Read triggers a measurement: periph's Sense sleeps 80 ms, then polls the
// busy bit every 10 ms for up to 150 ms, and checks the CRC.
type aht20Sensor struct {
	envReader
}

var _ Sensor = (*aht20Sensor)(nil)

func openAHT20(ctx context.Context, env Env, opts any) (Sensor, error) {
	_, c, err := openI2COpts[AHT20Opts](ctx, env, "aht20", opts)
	if err != nil {
		return nil, err
	}
	// NewI2C reads the status byte and sends the calibration command if
	// the calibrated bit is clear (then sleeps 10 ms).
	po := aht20.DefaultOpts
	dev, err := aht20.NewI2C(c.bus, &po)
	if err != nil {
		return nil, c.openErr(aht20OpenCause(err))
	}
	return &aht20Sensor{envReader{id: c.id, dev: dev, convert: envTemperatureHumidity, limits: aht20Limits}}, nil
}

// aht20OpenCause replaces periph's "<cause>; could read sensor status"
// (sic) with "read status: <cause>", keeping the cause in the chain.
func aht20OpenCause(err error) error {
	cause := errors.Unwrap(err)
	if cause == nil {
		return err
	}
	switch {
	case strings.HasSuffix(err.Error(), "; could read sensor status"):
		return fmt.Errorf("read status: %w", cause)
	case strings.HasSuffix(err.Error(), "; could not calibrate sensor"):
		return fmt.Errorf("calibrate: %w", cause)
	}
	return err
}

// Close forgets the device; see aht20Sensor for why Halt is not called.
// It is idempotent; the bus stays open (shared).
func (s *aht20Sensor) Close() error { return closeForget(&s.mu, &s.dev) }
