package sensors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
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
	Address:     0x40,
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

// Validate implements Validator.
func (o *INA219Opts) Validate() error {
	if o.Bus == "" {
		return errors.New(`bus: empty; set the I²C bus, e.g. "1" for /dev/i2c-1`)
	}
	if o.Address < 0x40 || o.Address > 0x4f {
		return fmt.Errorf("address: %#x is not an INA219 address; use 0x40..0x4f (A0 and A1 pins; 0x40 with both to GND)", o.Address)
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

// ina219Limits are the datasheet's input ranges: the bus pin takes 0..26 V;
// the shunt ADC measures ±320 mV with the PGA at /8.
var ina219Limits = map[string]Range{
	INA219BusVoltageV:   {Min: 0, Max: 26},
	INA219ShuntVoltageV: {Min: -ina219ShuntRange, Max: ina219ShuntRange},
}

func init() {
	Register(Driver{
		Name: "ina219",
		Doc:  "TI INA219 current/power monitor on I²C: bus_voltage_v, shunt_voltage_v, current_a, power_w",
		NewOpts: func() any {
			o := DefaultINA219Opts
			return &o
		},
		Open:   openINA219,
		Limits: ina219Limits,
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
	o, err := openOpts[INA219Opts](env, "ina219", opts)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s: ina219 %s %#x", env.Name, busLabel(o.Bus), o.Address)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	bus, err := env.I2C(o.Bus)
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	s := &ina219Sensor{id: id, addr: uint16(o.Address), wait: waitCtx}
	s.tap = &txTap{Bus: bus, after: s.observe}
	// New writes the calibration register, then configuration 0x1FFF. It
	// never reads, so a missing chip shows as a failed write.
	dev, err := ina219.New(s.tap, &ina219.Opts{
		Address:       o.Address,
		SenseResistor: ina219Resistance(o.ShuntOhms),
		MaxCurrent:    ina219Current(o.MaxCurrentA),
	})
	if err != nil {
		return nil, tapOpenErr(id, o.Bus, s.tap.cause(err))
	}
	if err := s.tap.Tx(s.addr, []byte{0x00, ina219Config >> 8, ina219Config & 0xff}, nil); err != nil {
		return nil, tapOpenErr(id, o.Bus, fmt.Errorf("set the 32 V bus range (configuration %#04x): %w", ina219Config, err))
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
func (s *ina219Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dev = nil
	return nil
}

// txTap is an i2c.Bus between a periph driver and the real bus that lets
// our wrapper see each transaction. periph's drivers hide what happened on
// the wire: ina219 replaces I/O errors with sentinels, sgp30 never checks
// its CRCs, ccs811 masks bits, ads1x15 never checks that a conversion
// finished. Used by the ina219, sgp30, ccs811 and ads1x15 drivers.
type txTap struct {
	i2c.Bus
	// lock, if set, is held around each transaction (sgp30's background
	// goroutine takes the agent's bus lock this way).
	lock sync.Locker
	// before runs first; a non-nil error is returned instead of doing the
	// transaction. Optional.
	before func(addr uint16, w, r []byte) error
	// after sees each transaction's bytes and error. Optional.
	after func(addr uint16, w, r []byte, err error)

	mu      sync.Mutex
	lastErr error // the latest failed transaction's error, until takeErr
}

var _ i2c.Bus = (*txTap)(nil)

// Tx implements i2c.Bus.
func (t *txTap) Tx(addr uint16, w, r []byte) error {
	if t.lock != nil {
		t.lock.Lock()
		defer t.lock.Unlock()
	}
	var err error
	if t.before != nil {
		err = t.before(addr, w, r)
	}
	if err == nil {
		err = t.Bus.Tx(addr, w, r)
	}
	if err != nil {
		t.mu.Lock()
		t.lastErr = err
		t.mu.Unlock()
	}
	if t.after != nil {
		t.after(addr, w, r, err)
	}
	return err
}

// takeErr returns and forgets the latest transaction error.
func (t *txTap) takeErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.lastErr
	t.lastErr = nil
	return err
}

// cause adds the bus error behind err when periph replaced it with a
// sentinel or formatted it with %v: "failed to read bus voltage:
// sysfs-i2c: remote I/O error". Both stay reachable with errors.Is.
func (t *txTap) cause(err error) error {
	io := t.takeErr()
	if io == nil || errors.Is(err, io) || strings.Contains(err.Error(), io.Error()) {
		return err
	}
	return fmt.Errorf("%w: %w", err, io)
}

// tapOpenErr formats an open error, with a wiring hint when no device
// answered (the kernel's EREMOTEIO for a NACK).
func tapOpenErr(id, bus string, err error) error {
	if strings.Contains(err.Error(), "remote I/O error") {
		n := bus
		for _, p := range []string{"/dev/i2c-", "I2C"} {
			if rest, ok := strings.CutPrefix(bus, p); ok && rest != "" {
				n = rest
			}
		}
		return fmt.Errorf("%s: open: no device answered; check the wiring and the address (i2cdetect -y %s): %w", id, n, err)
	}
	return fmt.Errorf("%s: open: %w", id, err)
}

// waitCtx sleeps for d or until ctx is done.
func waitCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// roundSig rounds v to digits significant digits: the ADCs here resolve
// 12 to 24 bits, and float noise beyond that only bloats the JSON.
func roundSig(v float64, digits int) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', digits, 64), 64)
	if err != nil {
		return v
	}
	return r
}
