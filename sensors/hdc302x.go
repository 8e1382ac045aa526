package sensors

import (
	"context"
	"fmt"
	"strconv"

	"periph.io/x/devices/v3/hdc302x"
)

// HDC302xOpts configures the hdc302x driver (TI HDC3020/3021/3022).
type HDC302xOpts struct {
	// Bus is the I²C bus: "1", "I2C1" or "/dev/i2c-1".
	Bus string `yaml:"bus"`
	// Address is 0x44..0x47, set by the ADDR and ADDR1 pins.
	Address int `yaml:"address"`
	// SampleRate is how often the chip measures by itself, in Hz: 0.5, 1,
	// 2, 4 or 10. A read returns the latest measurement. TI recommends at
	// most 1 Hz to avoid self-heating. Opening the sensor waits one sample
	// period (2 s at 0.5 Hz).
	SampleRate float64 `yaml:"sample_rate"`
}

// DefaultHDC302xOpts are the defaults NewOpts returns for hdc302x.
var DefaultHDC302xOpts = HDC302xOpts{
	Bus:        "1",
	Address:    int(hdc302xChip.Addrs[0]),
	SampleRate: 1,
}

// hdc302xRates maps sample_rate to periph's SampleRate, which periph uses as
// a slice index without a bounds check: only these values reach it.
var hdc302xRates = map[float64]hdc302x.SampleRate{
	0.5: hdc302x.RateHalfHertz,
	1:   hdc302x.RateHertz,
	2:   hdc302x.RateTwoHertz,
	4:   hdc302x.RateFourHertz,
	10:  hdc302x.Rate10Hertz,
}

// target implements i2cOptions.
func (o *HDC302xOpts) target() (string, int) { return o.Bus, o.Address }

// Validate implements Validator.
func (o *HDC302xOpts) Validate() error {
	if err := checkI2C(o.Bus, o.Address, hdc302xChip, "address: %#x is not an HDC302x address; use 0x44..0x47 (ADDR and ADDR1 pins; 0x44 with both low)"); err != nil {
		return err
	}
	if r, ok := hdc302xRates[o.SampleRate]; !ok || r > hdc302x.Rate10Hertz {
		return fmt.Errorf("sample_rate: %s Hz is not supported; use 0.5, 1, 2, 4 or 10", strconv.FormatFloat(o.SampleRate, 'g', -1, 64))
	}
	return nil
}

// hdc302xChip: 0x44..0x47 by the ADDR and ADDR1 pins; command 0x3781
// reads the manufacturer id, TI's 0x3000 (and a CRC).
var hdc302xChip = &I2CChip{
	Addrs: span(0x44, 0x47),
	Identify: func(b I2CBus, addr uint16) bool {
		r := make([]byte, 3)
		return b.Tx(addr, []byte{0x37, 0x81}, r) == nil && r[0] == 0x30 && r[1] == 0x00
	},
	What: "TI HDC302x (manufacturer id 0x3000)",
}

// hdc302xLimits are the datasheet's operating ranges. Raw 0xffff decodes
// to 130 °C and raw 0 to -45 °C, both rejected.
var hdc302xLimits = map[string]Range{
	TemperatureC: {Min: -40, Max: 125},
	HumidityPct:  {Min: 0, Max: 100},
}

func init() {
	Register(Driver{
		Name:    "hdc302x",
		Doc:     "TI HDC3020/3021/3022 on I²C: temperature_c, humidity_pct",
		NewOpts: defaults(DefaultHDC302xOpts),
		Open:    openHDC302x,
		Limits:  hdc302xLimits,
		I2C:     hdc302xChip,
	})
}

// hdc302xSensor wraps periph's hdc302x.Dev, which runs the chip in its
// auto-measurement mode; Sense reads the latest result (CRC-checked).
type hdc302xSensor struct {
	envReader
}

var _ Sensor = (*hdc302xSensor)(nil)

func openHDC302x(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, c, err := openI2COpts[HDC302xOpts](ctx, env, "hdc302x", opts)
	if err != nil {
		return nil, err
	}
	// NewI2C starts auto-measurement and sleeps one sample period (it
	// cannot be cancelled). It returns a non-nil *Dev together with an
	// error: the error is checked first and that Dev is never used (the
	// chip never acknowledged the start command, so there is nothing to
	// halt).
	dev, err := hdc302x.NewI2C(c.bus, c.addr, hdc302xRates[o.SampleRate])
	if err != nil {
		return nil, c.openErr(err)
	}
	return &hdc302xSensor{envReader{id: c.id, dev: dev, convert: envTemperatureHumidity, limits: hdc302xLimits}}, nil
}

// Close stops auto-measurement (the chip goes to sleep). It is idempotent;
// the bus stays open (shared).
func (s *hdc302xSensor) Close() error { return closeHalt(&s.mu, s.id, &s.dev) }
