package sensors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

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
	Address:      0x76,
	Oversampling: 4, // bmxx80.DefaultOpts
}

var oversampling = map[int]bmxx80.Oversampling{
	1: bmxx80.O1x, 2: bmxx80.O2x, 4: bmxx80.O4x, 8: bmxx80.O8x, 16: bmxx80.O16x,
}

// Validate implements Validator.
func (o *BMxx80Opts) Validate() error {
	if o.Bus == "" {
		return errors.New(`bus: empty; set the I²C bus, e.g. "1" for /dev/i2c-1`)
	}
	if o.Address != 0x76 && o.Address != 0x77 {
		return fmt.Errorf("address: %#x is not a BME280/BMP280 address; use 0x76 (SDO to GND) or 0x77 (SDO to VCC)", o.Address)
	}
	if _, ok := oversampling[o.Oversampling]; !ok {
		return fmt.Errorf("oversampling: %d is not supported; use 1, 2, 4, 8 or 16", o.Oversampling)
	}
	return nil
}

func init() {
	for _, d := range []struct{ name, doc string }{
		{"bme280", "Bosch BME280 on I²C: temperature_c, pressure_hpa, humidity_pct"},
		{"bmp280", "Bosch BMP280 on I²C: temperature_c, pressure_hpa"},
		{"bmp180", "Bosch BMP180 on I²C (address 0x77): temperature_c, pressure_hpa"},
	} {
		name := d.name
		limits := map[string]Range{TemperatureC: {-40, 85}, PressureHPa: {300, 1100}}
		if name == "bme280" {
			limits[HumidityPct] = Range{0, 100}
		}
		Register(Driver{
			Name: name,
			Doc:  d.doc,
			NewOpts: func() any {
				o := DefaultBMxx80Opts
				if name == "bmp180" {
					o.Address = 0x77 // its only address
				}
				return &o
			},
			Open: func(ctx context.Context, env Env, opts any) (Sensor, error) {
				return openBMxx80(ctx, env, name, opts)
			},
			Limits: limits,
		})
	}
}

type bmxx80Sensor struct {
	id  string // "greenhouse: bme280 /dev/i2c-1 0x76", prefix of every error
	bme bool

	mu  sync.Mutex // Read and Close may race when the scheduler gives up on a Read
	dev *bmxx80.Dev
}

var _ Sensor = (*bmxx80Sensor)(nil)

func openBMxx80(ctx context.Context, env Env, driver string, opts any) (Sensor, error) {
	o, err := openOpts[BMxx80Opts](env, driver, opts)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s: %s %s %#x", env.Name, driver, busLabel(o.Bus), o.Address)
	if driver == "bmp180" && (o.Address != 0x77 || o.Oversampling > 8) {
		return nil, fmt.Errorf("%s: open: the BMP180 answers only at 0x77 and oversamples at most 8 times; set address: 0x77 and oversampling 1, 2, 4 or 8", id)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	bus, err := env.I2C(o.Bus)
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	// Always a non-nil *Opts: bmxx80 dereferences it. Humidity is ignored
	// by bmxx80 on a BMP280.
	ovs := oversampling[o.Oversampling]
	dev, err := bmxx80.NewI2C(bus, uint16(o.Address), &bmxx80.Opts{Temperature: ovs, Pressure: ovs, Humidity: ovs})
	if err != nil {
		err = trimChipPrefix(err)
		if strings.Contains(err.Error(), "remote I/O error") {
			return nil, fmt.Errorf("%s: open: no device answered; check the wiring and the address (i2cdetect -y %s): %w", id, o.Bus, err)
		}
		return nil, fmt.Errorf("%s: open: %w", id, err)
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
	return &bmxx80Sensor{id: id, bme: driver == "bme280", dev: dev}, nil
}

// trimChipPrefix drops the "bme280: " prefixes bmxx80 adds once per layer
// (and as ": " before it knows the chip): our prefix already names it.
// bmxx80 formats causes with %v, so rebuilding the error loses no chain.
func trimChipPrefix(err error) error {
	msg := err.Error()
	t := msg
	for {
		next := strings.TrimPrefix(t, ": ")
		for _, p := range []string{"bme280: ", "bmp280: ", "bmp180: "} {
			next = strings.TrimPrefix(next, p)
		}
		if next == t {
			break
		}
		t = next
	}
	if t == msg {
		return err
	}
	return errors.New(t)
}

// busLabel shows a bus number as its device file, the name people know.
func busLabel(bus string) string {
	if bus != "" && strings.Trim(bus, "0123456789") == "" {
		return "/dev/i2c-" + bus
	}
	return bus
}

func (s *bmxx80Sensor) Read(ctx context.Context) (Values, error) {
	// periph takes no context: check before starting the I/O.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	var e physic.Env
	if err := s.dev.Sense(&e); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, trimChipPrefix(err))
	}
	v, err := bmxx80Values(e, s.bme)
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	return v, nil
}

// bmxx80Values converts and range-checks a reading (datasheet operating
// ranges): a glitched transfer decodes to numbers, not to an error.
func bmxx80Values(e physic.Env, bme bool) (Values, error) {
	v := Values{
		TemperatureC: round2(e.Temperature.Celsius()),
		PressureHPa:  round2(float64(e.Pressure) / float64(100*physic.Pascal)),
	}
	if bme {
		v[HumidityPct] = round2(float64(e.Humidity) / float64(physic.PercentRH))
	}
	if err := checkRange(TemperatureC, v[TemperatureC], -40, 85); err != nil {
		return nil, err
	}
	if err := checkRange(PressureHPa, v[PressureHPa], 300, 1100); err != nil {
		return nil, err
	}
	if bme {
		if err := checkRange(HumidityPct, v[HumidityPct], 0, 100); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Close halts the device. It is idempotent; the bus stays open (shared).
func (s *bmxx80Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil
	}
	err := s.dev.Halt()
	s.dev = nil
	if err != nil {
		return fmt.Errorf("%s: close: %w", s.id, err)
	}
	return nil
}
