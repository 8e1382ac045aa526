package sensors

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ina219"
)

// INA219Opts configures the ina219 driver (TI INA219 current, voltage and
// power monitor with an external shunt resistor).
type INA219Opts struct {
	// Bus is the I²C bus: "1", "I2C1" or "/dev/i2c-1".
	Bus string `yaml:"bus"`
	// Address is 0x40..0x4f, set by the A0 and A1 pins (0x40 with both
	// to GND).
	Address int `yaml:"address"`
	// ShuntOhms is the shunt resistor, in ohms: 0.1 on the common
	// breakout boards (marked R100).
	ShuntOhms float64 `yaml:"shunt_ohms"`
	// MaxCurrentA is the largest current to measure, in amperes. It sets
	// the resolution: one count is max_current_a / 32768. The shunt
	// voltage at this current (max_current_a × shunt_ohms) must stay within
	// the chip's 0.32 V range.
	MaxCurrentA float64 `yaml:"max_current_a"`
}

// DefaultINA219Opts are the defaults NewOpts returns for ina219 (periph's
// ina219.DefaultOpts: 0.1 Ω, 3.2 A).
var DefaultINA219Opts = INA219Opts{
	Bus:         "1",
	Address:     int(ina219Chip.Addrs[0]),
	ShuntOhms:   0.1,
	MaxCurrentA: 3.2,
}

const (
	ina219ShuntRange = 0.32 // V, the shunt ADC's range with the PGA at /8 (periph's setting)
	// ina219Config is periph's configuration (0x1FFF: PGA /8, 12-bit
	// with 128-sample averaging on both ADCs, continuous) with BRNG set:
	// a 32 V bus range instead of 16 V, so the chip's whole 0..26 V input
	// range is measured (periph's 16 V range clips above 16 V). The
	// resolution (4 mV) is the same.
	ina219Config = 0x3FFF
	// ina219Conversion is how long one shunt plus one bus conversion takes
	// with 128-sample averaging (2 × 68.1 ms, datasheet table 5).
	ina219Conversion = 140 * time.Millisecond
)

// ina219Cal is periph's calibration arithmetic (ina219.go calibrate), to
// reject options periph would refuse with "calibration would exceed
// maximum scaling".
func ina219Cal(shuntOhms, maxCurrentA float64) int64 {
	const scale = ((int64(physic.Ampere) * int64(physic.Ohm)) / 100000) << 12
	lsb := int64(ina219Current(maxCurrentA)) / (1 << 15)
	r := int64(ina219Resistance(shuntOhms))
	if lsb <= 0 || r <= 0 {
		return math.MaxInt64
	}
	return scale / (lsb * r)
}

func ina219Current(a float64) physic.ElectricCurrent {
	return physic.ElectricCurrent(math.Round(a * float64(physic.Ampere)))
}

func ina219Resistance(ohms float64) physic.ElectricResistance {
	return physic.ElectricResistance(math.Round(ohms * float64(physic.Ohm)))
}

// target implements i2cOptions.
func (o *INA219Opts) target() (string, int) { return o.Bus, o.Address }

// Validate implements Validator.
func (o *INA219Opts) Validate() error {
	if err := checkI2C(o.Bus, o.Address, ina219Chip, "address: %#x is not an INA219 address; use 0x40..0x4f (A0 and A1 pins; 0x40 with both to GND)"); err != nil {
		return err
	}
	if !(o.ShuntOhms > 0) || o.ShuntOhms > 100 {
		return fmt.Errorf("shunt_ohms: %g is not a shunt resistor; set its value in ohms, e.g. 0.1 for the common breakout boards (R100)", o.ShuntOhms)
	}
	if !(o.MaxCurrentA > 0) || o.MaxCurrentA > 1000 {
		return fmt.Errorf("max_current_a: %g is not valid; set the largest current to measure in amperes, e.g. 3.2", o.MaxCurrentA)
	}
	if v := o.MaxCurrentA * o.ShuntOhms; v > ina219ShuntRange+1e-12 {
		return fmt.Errorf("max_current_a: %g A through %g Ω is %.3g V, beyond the INA219's 0.32 V shunt range; use at most %.4g A with this shunt", o.MaxCurrentA, o.ShuntOhms, v, ina219ShuntRange/o.ShuntOhms)
	}
	if ina219Cal(o.ShuntOhms, o.MaxCurrentA) >= 1<<16 {
		// cal = 0.04096 / (max_current_a/32768 × shunt_ohms) must fit 16 bits.
		return fmt.Errorf("max_current_a: %g A with shunt_ohms %g is too fine a resolution for the calibration register; raise max_current_a to at least %.4g A", o.MaxCurrentA, o.ShuntOhms, 0.04096*32768/65535/o.ShuntOhms)
	}
	return nil
}

// Value names of the ina219 driver.
const (
	INA219BusVoltageV   = "bus_voltage_v"
	INA219ShuntVoltageV = "shunt_voltage_v"
	INA219CurrentA      = "current_a"
	INA219PowerW        = "power_w"
)

// ina219Chip: 0x40..0x4f by the A0 and A1 pins; the configuration
// register reads 0x399F after reset.
var ina219Chip = &I2CChip{
	Addrs: span(0x40, 0x4f),
	Identify: func(b I2CBus, addr uint16) bool {
		v, ok := readReg16(b, addr, 0x00)
		return ok && v == 0x399F
	},
	What: "TI INA219 (config 0x399F after reset)",
}

// ina219Limits are the datasheet's input ranges: the bus pin takes 0..26 V;
// the shunt ADC measures ±320 mV with the PGA at /8.
var ina219Limits = map[string]Range{
	INA219BusVoltageV:   {Min: 0, Max: 26},
	INA219ShuntVoltageV: {Min: -ina219ShuntRange, Max: ina219ShuntRange},
}

func init() {
	Register(Driver{
		Name:    "ina219",
		Doc:     "TI INA219 current/power monitor on I²C: bus_voltage_v, shunt_voltage_v, current_a, power_w",
		NewOpts: defaults(DefaultINA219Opts),
		Open:    openINA219,
		Limits:  ina219Limits,
		I2C:     ina219Chip,
	})
}

// ina219Sensor wraps periph's ina219.Dev. periph replaces every I/O error
// with a sentinel ("failed to read bus voltage"): the bus is wrapped in a
// txTap so the error says both what failed and why.
type ina219Sensor struct {
	id   string // "solar: ina219 /dev/i2c-1 0x40", prefix of every error
	addr uint16
	tap  *txTap
	// wait sleeps between the two tries of a read whose conversion was
	// not ready; tests replace it.
	wait func(ctx context.Context, d time.Duration) error

	mu     sync.Mutex // Read and Close may race when the scheduler gives up on a Read
	dev    *ina219.Dev
	busReg uint16 // the bus voltage register as last read, for its CNVR bit
}

var _ Sensor = (*ina219Sensor)(nil)

func openINA219(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, c, err := openI2COpts[INA219Opts](ctx, env, "ina219", opts)
	if err != nil {
		return nil, err
	}
	s := &ina219Sensor{id: c.id, addr: c.addr, wait: waitCtx}
	s.tap = &txTap{Bus: c.bus, after: s.observe}
	// New writes the calibration register, then configuration 0x1FFF. It
	// never reads, so a missing chip shows as a failed write.
	dev, err := ina219.New(s.tap, &ina219.Opts{
		Address:       o.Address,
		SenseResistor: ina219Resistance(o.ShuntOhms),
		MaxCurrent:    ina219Current(o.MaxCurrentA),
	})
	if err != nil {
		return nil, c.openErr(s.tap.cause(err))
	}
	if err := s.tap.Tx(s.addr, []byte{0x00, ina219Config >> 8, ina219Config & 0xff}, nil); err != nil {
		return nil, c.openErr(fmt.Errorf("set the 32 V bus range (configuration %#04x): %w", ina219Config, err))
	}
	s.dev = dev
	return s, nil
}

// observe keeps the raw bus voltage register: periph drops its CNVR bit.
func (s *ina219Sensor) observe(addr uint16, w, r []byte, err error) {
	if err == nil && addr == s.addr && len(w) == 1 && w[0] == 0x02 && len(r) == 2 {
		s.busReg = uint16(r[0])<<8 | uint16(r[1])
	}
}

func (s *ina219Sensor) Read(ctx context.Context) (Values, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	for try := 0; ; try++ {
		// periph takes no context: check before starting the I/O.
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s: read: %w", s.id, err)
		}
		s.tap.takeErr()
		s.busReg = 0
		pm, err := s.dev.Sense()
		if err != nil {
			if err.Error() == "bus voltage register overflow" {
				// periph's name for the OVF (math overflow) bit.
				return nil, fmt.Errorf("%s: read: current or power out of range (math overflow flag set): the current exceeds max_current_a, or shunt_ohms is wrong", s.id)
			}
			return nil, fmt.Errorf("%s: read: %w", s.id, s.tap.cause(err))
		}
		// CNVR (bit 1) is set when a conversion finished and cleared by
		// reading the power register, which Sense does last: clear means
		// the registers still hold the previous (or, right after open,
		// the power-on) values.
		if s.busReg&2 == 0 {
			if try == 0 {
				if err := s.wait(ctx, ina219Conversion); err != nil {
					return nil, fmt.Errorf("%s: read: waiting for a conversion: %w", s.id, err)
				}
				continue
			}
			return nil, fmt.Errorf("%s: read: no conversion finished within %s (conversion ready bit clear twice)", s.id, ina219Conversion)
		}
		return Values{
			INA219BusVoltageV:   math.Round(float64(pm.Voltage)/float64(physic.MilliVolt)) / 1000, // 4 mV steps
			INA219ShuntVoltageV: math.Round(float64(pm.Shunt)/float64(physic.MicroVolt)) / 1e6,    // 10 µV steps
			INA219CurrentA:      roundSig(float64(pm.Current)/float64(physic.Ampere), 6),
			INA219PowerW:        roundSig(float64(pm.Power)/float64(physic.Watt), 6),
		}, nil
	}
}

// Close forgets the device. The chip keeps converting (a few hundred µA);
// periph has no power-down. It is idempotent; the bus stays open (shared).
func (s *ina219Sensor) Close() error { return closeForget(&s.mu, &s.dev) }
