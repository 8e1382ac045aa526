package sensors

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"
)

// BMxx80Opts configures the bme280 and bmp280 drivers.
type BMxx80Opts struct {
	// Bus is the I²C bus: "1", "I2C1" or "/dev/i2c-1".
	Bus string `yaml:"bus"`
	// Address is 0x76 (SDO to GND) or 0x77 (SDO to VCC).
	Address int `yaml:"address"`
	// Oversampling applies to every quantity: 1, 2, 4, 8 or 16. More means
	// less noise, a longer measurement and a little self-heating.
	Oversampling int `yaml:"oversampling"`
}

// DefaultBMxx80Opts are the defaults NewOpts returns for bme280 and bmp280.
var DefaultBMxx80Opts = BMxx80Opts{
	Bus:          "1",
	Address:      int(bmxx80Chips["bme280"].Addrs[0]),
	Oversampling: 4, // bmxx80.DefaultOpts
}

var oversampling = map[int]bmxx80.Oversampling{
	1: bmxx80.O1x, 2: bmxx80.O2x, 4: bmxx80.O4x, 8: bmxx80.O8x, 16: bmxx80.O16x,
}

// Validate implements Validator.
func (o *BMxx80Opts) Validate() error {
	if err := checkI2C(o.Bus, o.Address, bmxx80Chips["bme280"], "address: %#x is not a BME280/BMP280 address; use 0x76 (SDO to GND) or 0x77 (SDO to VCC)"); err != nil {
		return err
	}
	if _, ok := oversampling[o.Oversampling]; !ok {
		return fmt.Errorf("oversampling: %d is not supported; use 1, 2, 4, 8 or 16", o.Oversampling)
	}
	return nil
}

// bmxx80Chips are the chips by driver name: their addresses and chip ids
// (register 0xD0). The BMP280 has three ids (samples 0x56, 0x57; mass
// production 0x58).
var bmxx80Chips = map[string]*I2CChip{
	"bme280": {Addrs: []uint16{0x76, 0x77}, Identify: bmxx80ID(0x60), What: "Bosch BME280 (chip id 0x60 at 0xD0)"},
	"bmp280": {Addrs: []uint16{0x76, 0x77}, Identify: bmxx80ID(0x58, 0x56, 0x57), What: "Bosch BMP280 (chip id 0x58 at 0xD0)"},
	"bmp180": {Addrs: []uint16{0x77}, Identify: bmxx80ID(0x55), What: "Bosch BMP180 (chip id 0x55 at 0xD0)"},
}

func bmxx80ID(ids ...byte) func(b I2CBus, addr uint16) bool {
	return func(b I2CBus, addr uint16) bool {
		id, ok := readReg(b, addr, 0xD0, 1)
		return ok && slices.Contains(ids, id[0])
	}
}

// bmxx80Limits are the datasheet's operating ranges.
var bmxx80Limits = map[string]Range{TemperatureC: {-40, 85}, PressureHPa: {300, 1100}, HumidityPct: {0, 100}}

func init() {
	for _, d := range []struct{ name, doc string }{
		{"bme280", "Bosch BME280 on I²C: temperature_c, pressure_hpa, humidity_pct"},
		{"bmp280", "Bosch BMP280 on I²C: temperature_c, pressure_hpa"},
		{"bmp180", "Bosch BMP180 on I²C (address 0x77): temperature_c, pressure_hpa"},
	} {
		name := d.name
		limits := map[string]Range{TemperatureC: bmxx80Limits[TemperatureC], PressureHPa: bmxx80Limits[PressureHPa]}
		if name == "bme280" {
			limits[HumidityPct] = bmxx80Limits[HumidityPct]
		}
		chip := bmxx80Chips[name]
		Register(Driver{
			Name: name,
			Doc:  d.doc,
			NewOpts: func() any {
				o := DefaultBMxx80Opts
				o.Address = int(chip.Addrs[0]) // 0x77 on the BMP180, its only address
				return &o
			},
			Open: func(ctx context.Context, env Env, opts any) (Sensor, error) {
				return openBMxx80(ctx, env, name, opts)
			},
			Limits: limits,
			I2C:    chip,
		})
	}
}

// bmxx80Sensor reads with periph's Sense, which takes no context (so it
// is checked before starting the I/O).
type bmxx80Sensor struct {
	envReader
}

var _ Sensor = (*bmxx80Sensor)(nil)

func openBMxx80(ctx context.Context, env Env, driver string, opts any) (Sensor, error) {
	o, err := openOpts[BMxx80Opts](env, driver, opts)
	if err != nil {
		return nil, err
	}
	c := newI2CConn(env, driver, o.Bus, o.Address)
	id := c.id
	if driver == "bmp180" && (!bmxx80Chips[driver].has(o.Address) || o.Oversampling > 8) {
		return nil, fmt.Errorf("%s: open: the BMP180 answers only at 0x77 and oversamples at most 8 times; set address: 0x77 and oversampling 1, 2, 4 or 8", id)
	}
	if err := c.open(ctx, env); err != nil {
		return nil, err
	}
	// Always a non-nil *Opts: bmxx80 dereferences it. Humidity is ignored
	// by bmxx80 on a BMP280.
	ovs := oversampling[o.Oversampling]
	dev, err := bmxx80.NewI2C(c.bus, c.addr, &bmxx80.Opts{Temperature: ovs, Pressure: ovs, Humidity: ovs})
	if err != nil {
		return nil, c.openErr(trimChipPrefix(err))
	}
	// String() is "BME280{...}": the chip bmxx80 detected from its id.
	chip, _, _ := strings.Cut(dev.String(), "{")
	if chip = strings.ToLower(chip); chip != driver {
		// Nothing to undo: after NewI2C the chip sleeps, Halt is a no-op.
		switch chip {
		case "bmp280":
			return nil, fmt.Errorf("%s: open: chip is a BMP280, which has no humidity sensor; use driver bmp280", id)
		case "bme280":
			return nil, fmt.Errorf("%s: open: chip is a BME280; use driver bme280 (it also reports humidity)", id)
		case "bmp180":
			return nil, fmt.Errorf("%s: open: chip is a BMP180; use driver bmp180", id)
		default:
			return nil, fmt.Errorf("%s: open: chip is a %s, which is not supported", id, strings.ToUpper(chip))
		}
	}
	bme := driver == "bme280"
	return &bmxx80Sensor{envReader{id: id, dev: dev, clean: trimChipPrefix, limits: bmxx80Limits,
		convert: func(e physic.Env) Values { return bmxx80Convert(e, bme) }}}, nil
}

// trimChipPrefix drops the "bme280: " prefixes bmxx80 adds once per layer
// (and as ": " before it knows the chip): our prefix already names it.
// bmxx80 formats causes with %v, so rebuilding the error loses no chain.
func trimChipPrefix(err error) error {
	return trimPrefixes(err, "bme280: ", "bmp280: ", "bmp180: ")
}

// Read checks ctx before taking the lock, as periph takes no context.
func (s *bmxx80Sensor) Read(ctx context.Context) (Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	return s.envReader.Read(ctx)
}

// bmxx80Values converts and range-checks a reading (datasheet operating
// ranges): a glitched transfer decodes to numbers, not to an error.
func bmxx80Values(e physic.Env, bme bool) (Values, error) {
	v := bmxx80Convert(e, bme)
	if err := checkLimits(v, bmxx80Limits); err != nil {
		return nil, err
	}
	return v, nil
}

func bmxx80Convert(e physic.Env, bme bool) Values {
	v := Values{
		TemperatureC: round2(e.Temperature.Celsius()),
		PressureHPa:  round2(float64(e.Pressure) / float64(100*physic.Pascal)),
	}
	if bme {
		v[HumidityPct] = round2(float64(e.Humidity) / float64(physic.PercentRH))
	}
	return v
}

// Close halts the device. It is idempotent; the bus stays open (shared).
func (s *bmxx80Sensor) Close() error { return closeHalt(&s.mu, s.id, &s.dev) }
