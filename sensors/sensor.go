// Package sensors turns periph devices into readings: a small context-first
// Sensor interface, a registry of drivers by name, and one file per driver
// (chip family) with its test. A driver registers a Driver from its init;
// an I²C driver's Driver carries its chip's addresses and identification
// (I2CChip), which `sensor-agent scan` reads.
//
// Drivers share helpers only through files of their own: sensor.go (the
// registry, options), i2c.go (opening a bus, options checks, I²C hints),
// txtap.go (watching periph's transactions), physic.go (the Read of
// periph's physic.SenseEnv devices), close.go (Close), wait.go (waiting
// with a context), values.go (rounding, range checks), pin.go (GPIO
// inputs), sysfs.go (kernel files), hosterr.go (periph's host errors
// turned into advice), env.go (the host) and open.go (what Open adds
// around every driver). A driver file never uses another driver file's
// private helpers.
//
// The agent owns timing: drivers never use periph's SenseContinuous. A Read
// may block inside periph (which has no context); the scheduler enforces the
// read timeout and never starts a second Read while one is still running.
package sensors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"sort"
	"sync"
)

// Values maps unit-suffixed value names to numbers, for example
// temperature_c, humidity_pct, pressure_hpa, level.
type Values map[string]float64

// Value names shared by several drivers.
const (
	TemperatureC = "temperature_c"
	HumidityPct  = "humidity_pct"
	PressureHPa  = "pressure_hpa"
	Level        = "level"
)

// Sensor is one opened device.
type Sensor interface {
	// Read takes one measurement. It returns ErrDone when the sensor has
	// no more readings to give (a sim sensor with a count).
	Read(ctx context.Context) (Values, error)
	// Close releases the device. The scheduler re-opens a sensor after
	// repeated errors, so Close must leave the hardware reusable.
	Close() error
}

// ErrDone tells the scheduler that a sensor has finished for good.
var ErrDone = errors.New("no more readings")

// errWarmingUp marks an error that only says a sensor has no first
// measurement yet (scd4x in its first 5 s, sgp30 during IAQ init).
var errWarmingUp = errors.New("warming up")

// Driver is a registry entry: how to make options and how to open a device.
type Driver struct {
	// Name is the value of a sensor's `driver:` key.
	Name string
	// Doc is a one-line description shown by `sensor-agent drivers`.
	Doc string
	// NewOpts returns a pointer to a fresh options struct holding the
	// driver's defaults. The config loader decodes the sensor's
	// driver-specific YAML keys into it strictly (yaml tags name the keys).
	// If the result has a `Validate() error` method it is called after
	// decoding.
	NewOpts func() any
	// Open opens the device described by opts (the value NewOpts returned,
	// filled in). It is called at start and again after failures, so a
	// device missing at boot is retried rather than fatal. Open must not
	// take longer than ctx allows where it can avoid it.
	Open func(ctx context.Context, env Env, opts any) (Sensor, error)
	// Limits are each value's plausible range, from the datasheet. A
	// reading outside it (0 K, the 85 °C power-on value, RH over 100 %)
	// is an error, never data. Users may override them per sensor.
	Limits map[string]Range
	// I2C says where an I²C chip answers and how scan recognises it; nil
	// for drivers that are not on I²C.
	I2C *I2CChip
}

// ValueName is what a value name must look like: lowercase letters,
// digits and _, as in temperature_c. UnitValueName also requires a unit
// suffix after the last _, for names the user makes up (ads1x15, hx711).
var (
	ValueName     = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	UnitValueName = regexp.MustCompile(`^[a-z][a-z0-9_]*_[a-z0-9]+$`)
)

// Range is a closed interval of plausible values.
type Range struct {
	Min float64 `yaml:"min"`
	Max float64 `yaml:"max"`
}

// Contains reports whether v lies in r.
func (r Range) Contains(v float64) bool { return v >= r.Min && v <= r.Max }

// Env is what a driver may use to reach the host. Every field has a working
// default (see DefaultEnv); tests replace them with periph's fakes.
type Env struct {
	// Name is the sensor's configured name, for error messages.
	Name string
	// Logger is the sensor's own logger.
	Logger *slog.Logger
	// I2C opens (or shares) an I²C bus by name: "1", "I2C1", "/dev/i2c-1".
	I2C func(name string) (I2CBus, error)
	// Pin looks a GPIO pin up by name ("GPIO17", "17").
	Pin func(name string) (PinIn, error)
	// SysFS is the root of the sysfs tree, "/sys" on a real system; tests
	// point it at a fixture tree.
	SysFS string
}

var (
	mu       sync.RWMutex
	registry = map[string]Driver{}
)

// Register adds a driver. It is called from the driver file's init and
// panics on a duplicate name, which is a programming error.
func Register(d Driver) {
	mu.Lock()
	defer mu.Unlock()
	if d.Name == "" || d.Open == nil || d.NewOpts == nil {
		panic("sensors: Register: incomplete driver " + d.Name)
	}
	if _, dup := registry[d.Name]; dup {
		panic("sensors: Register: duplicate driver " + d.Name)
	}
	registry[d.Name] = d
}

// Lookup returns the driver registered under name.
func Lookup(name string) (Driver, bool) {
	mu.RLock()
	defer mu.RUnlock()
	d, ok := registry[name]
	return d, ok
}

// Drivers returns every registered driver, sorted by name.
func Drivers() []Driver {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]Driver, 0, len(registry))
	for _, d := range registry {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the registered driver names, sorted, for error messages.
func Names() []string {
	ds := Drivers()
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Name
	}
	return out
}

// Validator is implemented by option structs that can check themselves.
// The config loader calls it after decoding; drivers call it again in Open
// because tests and other callers may build options by hand.
type Validator interface {
	Validate() error
}

// Errorf formats an error prefixed with the sensor's name. Drivers prefix
// their errors with the sensor and device, the way every driver should:
// `greenhouse: bme280 /dev/i2c-1 0x76: read: ...`.
func Errorf(env Env, format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{env.Name}, args...)...)
}

// openOpts checks that opts is the driver's *T and valid. Open must not
// trust that the config loader validated: tests build options by hand.
func openOpts[T any](env Env, driver string, opts any) (*T, error) {
	o, ok := opts.(*T)
	if !ok || o == nil {
		return nil, fmt.Errorf("%s: %s: options are %T, want %T", env.Name, driver, opts, (*T)(nil))
	}
	if v, ok := any(o).(Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", env.Name, driver, err)
		}
	}
	return o, nil
}

// defaults is a Driver's NewOpts: a fresh copy of the driver's default
// options on each call.
func defaults[T any](def T) func() any {
	return func() any {
		o := def
		return &o
	}
}

// or returns f, or def when f is nil: an options struct's test seam (a
// func) or the real thing.
func or[F any](f, def F) F {
	if reflect.ValueOf(&f).Elem().IsNil() {
		return def
	}
	return f
}
