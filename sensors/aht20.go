package sensors

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/aht20"
)

// AHT20Opts configures the aht20 driver (ASAIR AHT20 temperature and
// humidity sensor).
type AHT20Opts struct {
	// Bus is the I²C bus: "1", "I2C1" or "/dev/i2c-1".
	Bus string `yaml:"bus"`
	// Address is fixed at 0x38 by the chip. The key exists so that a
	// config copied from another sensor gets a clear error, not a silent
	// read from the wrong part.
	Address int `yaml:"address"`
}

// DefaultAHT20Opts are the defaults NewOpts returns for aht20.
var DefaultAHT20Opts = AHT20Opts{Bus: "1", Address: 0x38}

// Validate implements Validator.
func (o *AHT20Opts) Validate() error {
	if o.Bus == "" {
		return errors.New(`bus: empty; set the I²C bus, e.g. "1" for /dev/i2c-1`)
	}
	if o.Address != 0x38 {
		return fmt.Errorf("address: %#x is not possible; the AHT20's address is fixed at 0x38 (remove the key, or use a pca9548 mux for a second AHT20)", o.Address)
	}
	return nil
}

// aht20Limits are the datasheet's operating ranges. The formula's floor,
// raw 0 (an all-zero frame), decodes to -50 °C and is rejected by them.
var aht20Limits = map[string]Range{
	TemperatureC: {Min: -40, Max: 85},
	HumidityPct:  {Min: 0, Max: 100},
}

func init() {
	Register(Driver{
		Name: "aht20",
		Doc:  "ASAIR AHT20 on I²C (fixed address 0x38): temperature_c, humidity_pct",
		NewOpts: func() any {
			o := DefaultAHT20Opts
			return &o
		},
		Open:   openAHT20,
		Limits: aht20Limits,
	})
}

// aht20Sensor wraps periph's aht20.Dev.
//
// periph quirk: aht20.Dev.Halt only stops SenseContinuous, and deadlocks
// when that goroutine is blocked on its unbuffered channel (Halt waits for
// the goroutine while holding the mutex the goroutine needs). We never call SenseContinuous, and Close does not call Halt
// either: the AHT20 goes idle by itself after each measurement, so there is
// nothing to power down.
type aht20Sensor struct {
	id string // "greenhouse: aht20 /dev/i2c-1 0x38", prefix of every error

	mu  sync.Mutex // Read and Close may race when the scheduler gives up on a Read
	dev *aht20.Dev
}

var _ Sensor = (*aht20Sensor)(nil)

func openAHT20(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, err := openOpts[AHT20Opts](env, "aht20", opts)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s: aht20 %s %#x", env.Name, busLabel(o.Bus), o.Address)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	bus, err := env.I2C(o.Bus)
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	// NewI2C reads the status byte and sends the calibration command if
	// the calibrated bit is clear (then sleeps 10 ms).
	po := aht20.DefaultOpts
	dev, err := aht20.NewI2C(bus, &po)
	if err != nil {
		return nil, i2cOpenError(id, o.Bus, aht20OpenCause(err))
	}
	return &aht20Sensor{id: id, dev: dev}, nil
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

// Read triggers a measurement. periph's Sense sleeps 80 ms, then polls the
// busy bit every 10 ms for up to 150 ms, and checks the CRC.
func (s *aht20Sensor) Read(ctx context.Context) (Values, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	return senseEnv(ctx, s.id, time.Time{}, s.dev, envTemperatureHumidity, aht20Limits)
}

// Close forgets the device; see aht20Sensor for why Halt is not called.
// It is idempotent; the bus stays open (shared).
func (s *aht20Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dev = nil
	return nil
}

// Helpers shared by the aht20, am2320, hdc302x, mcp9808, tmp102 and bh1750
// drivers.

// i2cOpenError prefixes an Open failure with the sensor id and, when no
// device answered, says what to check.
func i2cOpenError(id, bus string, err error) error {
	if strings.Contains(err.Error(), "remote I/O error") {
		return fmt.Errorf("%s: open: no device answered; check the wiring and the address (i2cdetect -y %s): %w", id, i2cBusNumber(bus), err)
	}
	return fmt.Errorf("%s: open: %w", id, err)
}

// i2cBusNumber turns "/dev/i2c-1" and "I2C1" into "1" for i2cdetect.
func i2cBusNumber(bus string) string {
	for _, p := range []string{"/dev/i2c-", "I2C"} {
		if n, ok := strings.CutPrefix(bus, p); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return n
		}
	}
	return bus
}

// i2cCheckLimits checks every value that has a limit, in name order so the
// error is deterministic. The agent checks the (user-adjustable) limits
// again; drivers check the datasheet ranges so that garbage never leaves
// them as data.
func i2cCheckLimits(v Values, limits map[string]Range) error {
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

// i2cSleepUntil waits until t or until ctx is done, whichever comes first.
// senseEnv is one read of a periph physic.SenseEnv device, the same for
// every environment driver: wait until ready (a first conversion after
// open; zero for none) or ctx ends — periph takes no context —, Sense,
// convert, and reject values outside the limits. The caller holds its lock
// and has checked that the sensor is open.
func senseEnv(ctx context.Context, id string, ready time.Time, dev interface{ Sense(*physic.Env) error },
	convert func(physic.Env) Values, limits map[string]Range) (Values, error) {
	if err := i2cSleepUntil(ctx, ready); err != nil {
		return nil, fmt.Errorf("%s: read: %w", id, err)
	}
	var e physic.Env
	if err := dev.Sense(&e); err != nil {
		return nil, fmt.Errorf("%s: read: %w", id, err)
	}
	v := convert(e)
	if err := i2cCheckLimits(v, limits); err != nil {
		return nil, fmt.Errorf("%s: read: %w", id, err)
	}
	return v, nil
}

// envTemperature and envTemperatureHumidity convert a physic.Env.
func envTemperature(e physic.Env) Values {
	return Values{TemperatureC: round2(e.Temperature.Celsius())}
}

func envTemperatureHumidity(e physic.Env) Values {
	return Values{
		TemperatureC: round2(e.Temperature.Celsius()),
		HumidityPct:  round2(float64(e.Humidity) / float64(physic.PercentRH)),
	}
}

func i2cSleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
