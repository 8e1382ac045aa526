package sensors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/bh1750"
)

// bh1750Lux is the bh1750's value name. (It could join the shared value
// names in sensor.go.)
const bh1750Lux = "illuminance_lux"

// BH1750Opts configures the bh1750 driver (ROHM BH1750FVI ambient light).
type BH1750Opts struct {
	// Bus is the I²C bus: "1", "I2C1" or "/dev/i2c-1".
	Bus string `yaml:"bus"`
	// Address is 0x23 (ADDR pin low) or 0x5c (ADDR pin high).
	Address int `yaml:"address"`
	// Mode is the measurement mode: high (1 lx resolution, 120 ms), high2
	// (0.5 lx, 120 ms; for dim light) or low (4 lx, 16 ms).
	Mode string `yaml:"mode"`
}

// DefaultBH1750Opts are the defaults NewOpts returns for bh1750.
var DefaultBH1750Opts = BH1750Opts{Bus: "1", Address: int(bh1750Chip.Addrs[0]), Mode: "high"}

// bh1750Modes are the continuous modes. (The one-time modes would need a
// command and a wait on every read; continuous high resolution draws
// 120 µA.)
var bh1750Modes = map[string]struct {
	res  bh1750.Resolution
	wait time.Duration // the datasheet's maximum measurement time
	div  float64       // lux = raw / div (datasheet: raw / 1.2; half in mode 2)
}{
	"high":  {bh1750.ContinuousHighResMode, 180 * time.Millisecond, 1.2},
	"high2": {bh1750.ContinuousHighResMode2, 180 * time.Millisecond, 2.4},
	"low":   {bh1750.ContinuousLowResMode, 24 * time.Millisecond, 1.2},
}

// target implements i2cOptions.
func (o *BH1750Opts) target() (string, int) { return o.Bus, o.Address }

// Validate implements Validator.
func (o *BH1750Opts) Validate() error {
	if err := checkI2C(o.Bus, o.Address, bh1750Chip, "address: %#x is not a BH1750 address; use 0x23 (ADDR low) or 0x5c (ADDR high)"); err != nil {
		return err
	}
	if _, ok := bh1750Modes[o.Mode]; !ok {
		return fmt.Errorf("mode: %q is not valid; use high (1 lx), high2 (0.5 lx) or low (4 lx)", o.Mode)
	}
	return nil
}

// bh1750Chip: 0x23 (ADDR low) or 0x5c (ADDR high); the BH1750 has no ID
// register. At 0x5c scan names the AM2320 first, whose fixed address it is.
var bh1750Chip = &I2CChip{
	Addrs: []uint16{bh1750.I2CAddr, bh1750.AlternativeI2CAddr},
	What:  "probably a ROHM BH1750 (address 0x23)",
}

// bh1750Limits: the 16-bit result over 1.2 tops out at 54612.5 lx
// (27306.25 in high2); a full-scale reading is rejected as saturated.
var bh1750Limits = map[string]Range{bh1750Lux: {Min: 0, Max: 65535}}

const bh1750PowerDown = 0x00 // opcode

func init() {
	Register(Driver{
		Name:    "bh1750",
		Doc:     "ROHM BH1750 ambient light on I²C: illuminance_lux",
		NewOpts: defaults(DefaultBH1750Opts),
		Open:    openBH1750,
		Limits:  bh1750Limits,
		I2C:     bh1750Chip,
	})
}

// bh1750Sensor uses periph's bh1750.NewI2C and SetResolution to start
// continuous measurement, and reads the result itself. periph's Sense
// rewrites the mode, sleeps 140 ms without a context, truncates to whole
// lux and does not halve the result in high-resolution mode 2; its Halt
// (SetMode) writes the reset opcode, which does not power the chip down.
// In continuous mode the data register always holds the latest
// measurement, so a Read is one 2-byte read.
type bh1750Sensor struct {
	id  string // "greenhouse: bh1750 /dev/i2c-1 0x23", prefix of every error
	div float64

	mu    sync.Mutex // Read and Close may race when the scheduler gives up on a Read
	dev   *i2c.Dev   // nil once closed
	ready time.Time  // the first measurement after Open has ended
}

var _ Sensor = (*bh1750Sensor)(nil)

func openBH1750(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, c, err := openI2COpts[BH1750Opts](ctx, env, "bh1750", opts)
	if err != nil {
		return nil, err
	}
	mode := bh1750Modes[o.Mode]
	// NewI2C writes reset, continuous high resolution, reset (clears the
	// data register); SetResolution writes the mode opcode.
	dev, err := bh1750.NewI2C(c.bus, c.addr)
	if err != nil {
		return nil, c.openErr(err)
	}
	if mode.res != bh1750.ContinuousHighResMode {
		if err := dev.SetResolution(mode.res); err != nil {
			return nil, c.openErr(fmt.Errorf("set mode %s: %w", o.Mode, err))
		}
	}
	return &bh1750Sensor{
		id:    c.id,
		div:   mode.div,
		dev:   c.dev(),
		ready: time.Now().Add(mode.wait),
	}, nil
}

func (s *bh1750Sensor) Read(ctx context.Context) (Values, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	// The first read after Open waits for the first measurement: until
	// then the data register holds 0 after the reset.
	if err := sleepUntil(ctx, s.ready); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	var b [2]byte
	if err := s.dev.Tx(nil, b[:]); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	v, err := bh1750Values(uint16(b[0])<<8|uint16(b[1]), s.div)
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	return v, nil
}

func bh1750Values(raw uint16, div float64) (Values, error) {
	if raw == 0xffff {
		return nil, fmt.Errorf("sensor saturated: %g lx or more (full scale); shade it or use another sensor for direct sunlight", float64(raw)/div)
	}
	v := Values{bh1750Lux: round2(float64(raw) / div)}
	if err := checkLimits(v, bh1750Limits); err != nil {
		return nil, err
	}
	return v, nil
}

// Close powers the chip down (opcode 0x00; periph's Halt writes reset
// instead). The next Open powers it up. It is idempotent; the bus stays
// open (shared).
func (s *bh1750Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil
	}
	dev := s.dev
	s.dev = nil
	if err := dev.Tx([]byte{bh1750PowerDown}, nil); err != nil {
		return fmt.Errorf("%s: close: power down: %w", s.id, err)
	}
	return nil
}
