package sensors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/pca9548"
)

// Common holds the per-sensor settings every driver gets, applied around
// it by Open: plausibility limits, calibration and an I²C multiplexer.
type Common struct {
	// Limits override or extend the driver's datasheet ranges.
	Limits map[string]Range
	// Calibrate adjusts values after the limits are checked.
	Calibrate map[string]Calibration
	// Mux puts the sensor behind a PCA9548 channel.
	Mux *Mux
}

// Calibration corrects one value: v*scale + offset, optionally renamed.
type Calibration struct {
	Offset float64  `yaml:"offset"`
	Scale  *float64 `yaml:"scale"` // nil = 1
	Rename string   `yaml:"rename"`
}

// Mux is a PCA9548 (or TCA9548A) channel in front of the sensor, so several
// parts with the same address can share one bus.
type Mux struct {
	Address int `yaml:"address"` // 0x70..0x77
	Channel int `yaml:"channel"` // 0..7
}

// muxAddrs are the PCA9548's addresses, set by its A0-A2 pins.
var muxAddrs = span(0x70, 0x77)

// Validate checks a mux setting.
func (m *Mux) Validate() error {
	if !hasAddr(muxAddrs, m.Address) {
		return fmt.Errorf("mux.address: %#x is not a PCA9548 address; use 0x70..0x77 (A0-A2 pins)", m.Address)
	}
	if m.Channel < 0 || m.Channel > 7 {
		return fmt.Errorf("mux.channel: %d; use 0..7", m.Channel)
	}
	return nil
}

// Open opens a sensor through its driver with the common settings:
//
//   - every I²C bus the sensor uses is locked while it opens, reads or
//     closes, so sensors sharing a bus never interleave their transactions
//     (a multiplexer's channel switch and the read that follows stay
//     together);
//   - each reading is checked against the limits (the driver's, overridden
//     by c.Limits), then calibrated and renamed.
func Open(ctx context.Context, drv Driver, env Env, opts any, c Common) (Sensor, error) {
	limits := make(map[string]Range, len(drv.Limits)+len(c.Limits))
	for k, r := range drv.Limits {
		limits[k] = r
	}
	for k, r := range c.Limits {
		limits[k] = r
	}
	ls := &lockedSensor{limits: limits, calib: c.Calibrate}
	inner := env.I2C
	if inner != nil {
		env.I2C = func(name string) (I2CBus, error) {
			l := busLock(canonicalBus(name))
			if !ls.holds(l) {
				l.Lock()
				ls.locks = append(ls.locks, l)
			}
			b, err := inner(name)
			if err != nil || c.Mux == nil {
				return b, err
			}
			return muxPort(b, name, *c.Mux)
		}
	}
	dev, err := drv.Open(ctx, env, opts)
	ls.unlock()
	if err != nil {
		return nil, err
	}
	ls.dev = dev
	return ls, nil
}

var (
	busLocksMu sync.Mutex
	busLocks   = map[string]*sync.Mutex{}
)

func busLock(name string) *sync.Mutex {
	busLocksMu.Lock()
	defer busLocksMu.Unlock()
	l := busLocks[name]
	if l == nil {
		l = &sync.Mutex{}
		busLocks[name] = l
	}
	return l
}

// lockedSensor wraps a driver's sensor with its bus locks, limits and
// calibration.
type lockedSensor struct {
	dev    Sensor
	locks  []*sync.Mutex // the buses it opened, in order
	limits map[string]Range
	calib  map[string]Calibration
}

func (s *lockedSensor) holds(l *sync.Mutex) bool {
	for _, h := range s.locks {
		if h == l {
			return true
		}
	}
	return false
}

func (s *lockedSensor) lock() {
	for _, l := range s.locks {
		l.Lock()
	}
}

func (s *lockedSensor) unlock() {
	for i := len(s.locks) - 1; i >= 0; i-- {
		s.locks[i].Unlock()
	}
}

func (s *lockedSensor) Read(ctx context.Context) (Values, error) {
	s.lock()
	v, err := s.dev.Read(ctx)
	s.unlock()
	if err != nil {
		return nil, err
	}
	return s.adjust(v)
}

func (s *lockedSensor) Close() error {
	s.lock()
	defer s.unlock()
	return s.dev.Close()
}

// adjust checks limits on the raw values, then calibrates and renames.
func (s *lockedSensor) adjust(v Values) (Values, error) {
	var bad []string
	for k, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			bad = append(bad, fmt.Sprintf("%s is %v", k, x))
			continue
		}
		if r, ok := s.limits[k]; ok && !r.Contains(x) {
			bad = append(bad, fmt.Sprintf("%s = %g is outside the plausible range %g..%g", k, x, r.Min, r.Max))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("implausible reading: %s (a wiring or sensor fault; set limits to change the range)", strings.Join(bad, "; "))
	}
	if len(s.calib) == 0 {
		return v, nil
	}
	out := make(Values, len(v))
	for k, x := range v {
		c, ok := s.calib[k]
		if !ok {
			if _, taken := out[k]; !taken {
				out[k] = x
			}
			continue
		}
		if c.Scale != nil {
			x *= *c.Scale
		}
		x += c.Offset
		name := k
		if c.Rename != "" {
			name = c.Rename
		}
		out[name] = x
	}
	return out, nil
}

var (
	muxMu sync.Mutex
	muxes = map[string]*pca9548.Dev{}
)

// muxPort returns channel m.Channel of the PCA9548 at m.Address on bus,
// registering the multiplexer's ports with periph once per bus and address.
func muxPort(bus I2CBus, busName string, m Mux) (I2CBus, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s@%#x", canonicalBus(busName), m.Address)
	muxMu.Lock()
	defer muxMu.Unlock()
	d := muxes[key]
	if d == nil {
		var err error
		d, err = pca9548.New(bus, &pca9548.Opts{Addr: m.Address})
		if err != nil {
			return nil, fmt.Errorf("pca9548 %s: %w", key, err)
		}
		muxes[key] = d
	}
	return &muxChannel{dev: d, bus: bus, addr: uint16(m.Address), ch: uint8(m.Channel)}, nil
}

// muxChannel is one channel of a PCA9548. periph's port type is only
// reachable through the global i2creg registry; this selects the channel
// itself before every transaction, the same two steps, so a multiplexer
// that reset (power glitch) is put right on the next read.
type muxChannel struct {
	dev  *pca9548.Dev // proves the multiplexer answered at open
	bus  I2CBus
	addr uint16
	ch   uint8
}

func (m *muxChannel) String() string {
	return fmt.Sprintf("%s-pca9548-%x-%d", m.bus, m.addr, m.ch)
}

func (m *muxChannel) Tx(addr uint16, w, r []byte) error {
	if addr == m.addr {
		return errors.New("device address conflicts with the multiplexer's")
	}
	if err := m.bus.Tx(m.addr, []byte{1 << m.ch}, nil); err != nil {
		return fmt.Errorf("select pca9548 channel %d: %w", m.ch, err)
	}
	return m.bus.Tx(addr, w, r)
}

func (m *muxChannel) SetSpeed(f physic.Frequency) error { return m.bus.SetSpeed(f) }
