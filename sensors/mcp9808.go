package sensors

import (
	"context"
	"fmt"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/mcp9808"
)

// MCP9808Opts configures the mcp9808 driver (Microchip MCP9808).
//
// Its address is 0x18..0x1f, set by the A0-A2 pins (0x18 with all low).
type MCP9808Opts I2COpts

// DefaultMCP9808Opts are the defaults NewOpts returns for mcp9808.
var DefaultMCP9808Opts = MCP9808Opts(defaultI2COpts(mcp9808Chip))

// target implements i2cOptions.
func (o *MCP9808Opts) target() (string, int) { return o.Bus, o.Address }

// Validate implements Validator.
func (o *MCP9808Opts) Validate() error {
	return checkI2C(o.Bus, o.Address, mcp9808Chip, "address: %#x is not an MCP9808 address; use 0x18..0x1f (A0-A2 pins; 0x18 with all low)")
}

// mcp9808Chip: 0x18..0x1f by the A0-A2 pins, identified by its
// manufacturer and device id registers.
var mcp9808Chip = &I2CChip{
	Addrs:    span(0x18, 0x1f),
	Identify: func(b I2CBus, addr uint16) bool { return mcp9808CheckID(&i2c.Dev{Bus: b, Addr: addr}) == nil },
	What:     "Microchip MCP9808 (manufacturer 0x0054, device 0x04)",
}

// mcp9808Limits is the datasheet's accuracy range (-40..125 °C). periph
// returns 0 K with a failed read; anything below -40 °C is rejected.
var mcp9808Limits = map[string]Range{TemperatureC: {Min: -40, Max: 125}}

const (
	mcp9808RegManufacturer = 0x06 // reads 0x0054
	mcp9808RegDeviceID     = 0x07 // device id 0x04 in the high byte, revision in the low
	// mcp9808Conversion is the conversion time at 0.0625 °C resolution
	// (250 ms typical) with a margin. After power-up or shutdown the
	// temperature register holds 0 °C or a stale value until the first
	// conversion ends.
	mcp9808Conversion = 300 * time.Millisecond
)

func init() {
	Register(Driver{
		Name:    "mcp9808",
		Doc:     "Microchip MCP9808 on I²C: temperature_c",
		NewOpts: defaults(DefaultMCP9808Opts),
		Open:    openMCP9808,
		Limits:  mcp9808Limits,
		I2C:     mcp9808Chip,
	})
}

// mcp9808Sensor wraps periph's mcp9808.Dev at its maximum resolution
// (0.0625 °C). periph quirks handled here: SenseContinuous sends 0 K when a
// read fails (never used; Sense's error is checked and the value
// range-checked); I/O errors are replaced by periph's own sentinel errors
// ("failed to read ambient temperature"), so the cause is lost.
//
// The first read after Open waits for the first conversion (ready). On a
// failed Sense periph leaves 0 K: the error is returned, not the value.
type mcp9808Sensor struct {
	envReader
}

var _ Sensor = (*mcp9808Sensor)(nil)

func openMCP9808(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, c, err := openI2COpts[MCP9808Opts](ctx, env, "mcp9808", opts)
	if err != nil {
		return nil, err
	}
	// periph does not check the chip, and replaces I/O errors with its own:
	// read the id registers first, keeping the real cause.
	if err := mcp9808CheckID(c.dev()); err != nil {
		return nil, c.openErr(err)
	}
	// New writes the resolution, then the configuration (continuous
	// conversion). Always a non-nil *Opts: periph dereferences it.
	dev, err := mcp9808.New(c.bus, &mcp9808.Opts{Addr: o.Address, Res: mcp9808.Maximum})
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", c.id, err)
	}
	return &mcp9808Sensor{envReader{id: c.id, dev: dev, ready: time.Now().Add(mcp9808Conversion), convert: envTemperature, limits: mcp9808Limits}}, nil
}

// mcp9808CheckID reads the manufacturer and device id registers.
func mcp9808CheckID(d *i2c.Dev) error {
	var m, dev [2]byte
	if err := d.Tx([]byte{mcp9808RegManufacturer}, m[:]); err != nil {
		return fmt.Errorf("read manufacturer id: %w", err)
	}
	if err := d.Tx([]byte{mcp9808RegDeviceID}, dev[:]); err != nil {
		return fmt.Errorf("read device id: %w", err)
	}
	if m != [2]byte{0x00, 0x54} || dev[0] != 0x04 {
		return fmt.Errorf("not an MCP9808: manufacturer id %#04x, device id %#02x (want 0x0054, 0x04); check the address", uint16(m[0])<<8|uint16(m[1]), dev[0])
	}
	return nil
}

// Close puts the chip in shutdown mode (periph's Halt); the next Open
// enables it again. It is idempotent; the bus stays open (shared).
func (s *mcp9808Sensor) Close() error { return closeHalt(&s.mu, s.id, &s.dev) }
