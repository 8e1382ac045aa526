package sensors

import (
	"context"
	"fmt"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/tmp102"
)

// TMP102Opts configures the tmp102 driver (TI TMP102; also TMP112).
//
// Its address is 0x48..0x4b, set by wiring the ADD0 pin to GND, V+, SDA
// or SCL.
type TMP102Opts I2COpts

// DefaultTMP102Opts are the defaults NewOpts returns for tmp102.
var DefaultTMP102Opts = TMP102Opts(defaultI2COpts(tmp102Chip))

// target implements i2cOptions.
func (o *TMP102Opts) target() (string, int) { return o.Bus, o.Address }

// Validate implements Validator.
func (o *TMP102Opts) Validate() error {
	return checkI2C(o.Bus, o.Address, tmp102Chip, "address: %#x is not a TMP102 address; use 0x48..0x4b (ADD0 to GND, V+, SDA or SCL)")
}

// tmp102Chip: 0x48..0x4b by the ADD0 pin; its configuration register
// reads 0x60A0 after reset (bit 5, AL, follows the alert state).
var tmp102Chip = &I2CChip{
	Addrs: span(0x48, 0x4b),
	Identify: func(b I2CBus, addr uint16) bool {
		v, ok := readReg16(b, addr, tmp102RegConfig)
		return ok && v&0xFFDF == 0x6080
	},
	What: "TI TMP102 (config 0x60A0 after reset)",
}

// tmp102Limits is the datasheet's specified range (-40..125 °C).
var tmp102Limits = map[string]Range{TemperatureC: {Min: -40, Max: 125}}

const (
	tmp102RegConfig = 0x01
	tmp102ShutDown  = 1 << 8 // SD bit of the 16-bit configuration register
	// tmp102Conversion is the conversion time (26 ms typical, 35 ms max)
	// with a margin: after power-up or shutdown the temperature register
	// holds 0 °C or a stale value until the first conversion ends.
	tmp102Conversion = 40 * time.Millisecond
)

func init() {
	Register(Driver{
		Name:    "tmp102",
		Doc:     "TI TMP102 on I²C: temperature_c",
		NewOpts: defaults(DefaultTMP102Opts),
		Open:    openTMP102,
		Limits:  tmp102Limits,
		I2C:     tmp102Chip,
	})
}

// tmp102Sensor wraps periph's tmp102.Dev in continuous conversion at 4 Hz
// (the power-on rate), comparator mode, no alert limits written.
//
// periph quirks handled here: NewI2C returns a non-nil *Dev together with
// an error (checked first, that Dev is never used); its configuration read
// ignores errors (the configuration write that follows reports a missing
// chip); readTemperature returns -40 °C, a plausible value, with its error
// (Sense's error is checked); Halt clears the shutdown bit instead of
// setting it, so Close sets it itself; the decoding assumes the 12-bit
// format (extended mode off, the power-on default).
//
// The first read after Open waits for the first conversion (ready).
type tmp102Sensor struct {
	envReader
	reg *i2c.Dev // the same chip, for the shutdown periph gets wrong
}

var _ Sensor = (*tmp102Sensor)(nil)

func openTMP102(ctx context.Context, env Env, opts any) (Sensor, error) {
	_, c, err := openI2COpts[TMP102Opts](ctx, env, "tmp102", opts)
	if err != nil {
		return nil, err
	}
	// NewI2C reads the configuration, clears the shutdown bit and writes
	// it back with the conversion rate. A fresh *Opts per device: periph
	// keeps the pointer.
	dev, err := tmp102.NewI2C(c.bus, c.addr, &tmp102.Opts{SampleRate: tmp102.RateFourHertz, AlertSetting: tmp102.ModeComparator})
	if err != nil { // dev is non-nil here: never use it
		return nil, c.openErr(err)
	}
	return &tmp102Sensor{
		envReader: envReader{id: c.id, dev: dev, ready: time.Now().Add(tmp102Conversion), convert: envTemperature, limits: tmp102Limits},
		reg:       c.dev(),
	}, nil
}

// Close puts the chip in shutdown mode (configuration SD bit), which
// periph's Halt means to do but does not; the next Open clears it. It is
// idempotent; the bus stays open (shared).
func (s *tmp102Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil
	}
	reg := s.reg
	s.dev, s.reg = nil, nil
	var cfg [2]byte
	if err := reg.Tx([]byte{tmp102RegConfig}, cfg[:]); err != nil {
		return fmt.Errorf("%s: close: read configuration: %w", s.id, err)
	}
	c := uint16(cfg[0])<<8 | uint16(cfg[1]) | tmp102ShutDown
	if err := reg.Tx([]byte{tmp102RegConfig, byte(c >> 8), byte(c)}, nil); err != nil {
		return fmt.Errorf("%s: close: write shutdown: %w", s.id, err)
	}
	return nil
}
