package sensors

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"
)

// I2CBus is an opened I²C bus. It has no Close on purpose: buses are shared
// by every sensor on them and only CloseBuses closes them.
type I2CBus = i2c.Bus

// PinIn is a GPIO pin usable as an input.
type PinIn = gpio.PinIn

var (
	hostOnce   sync.Once
	hostErr    error
	hostFailed []error // periph's host drivers that failed to load

	busMu sync.Mutex
	buses = map[string]i2c.BusCloser{} // by canonical i2creg name
)

// InitHost initialises periph's host drivers once per process and logs what
// loaded, was skipped or failed. Only registry problems are returned: a
// driver that failed (for example for lack of permissions) lands in
// State.Failed, which is logged at warn level because the bus or pin lookup
// that depends on it fails later with a less telling error.
//
// DefaultEnv calls it lazily; the agent may call it early to get the log
// lines at start-up.
func InitHost(logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	hostOnce.Do(func() {
		state, err := host.Init()
		if err != nil {
			hostErr = fmt.Errorf("periph host init: %w", err)
			return
		}
		for _, d := range state.Loaded {
			logger.Debug("periph driver loaded", "driver", d.String())
		}
		for _, f := range state.Skipped {
			logger.Debug("periph driver skipped", "driver", f.D.String(), "reason", f.Err)
		}
		for _, f := range state.Failed {
			hostFailed = append(hostFailed, fmt.Errorf("%s: %w", f.D, f.Err))
			logger.Warn("periph driver failed", "driver", f.D.String(), "err", f.Err)
		}
	})
	return hostErr
}

// DefaultEnv returns the Env for real hardware: I²C buses through i2creg
// (one shared handle per bus), GPIO pins through gpioreg, sysfs at /sys.
// A nil logger means slog.Default().
func DefaultEnv(name string, logger *slog.Logger) Env {
	if logger == nil {
		logger = slog.Default()
	}
	return Env{
		Name:   name,
		Logger: logger,
		I2C: func(bus string) (I2CBus, error) {
			return openBus(logger, bus)
		},
		Pin: func(pin string) (PinIn, error) {
			return lookupPin(logger, pin)
		},
		SysFS: "/sys",
	}
}

// log returns e.Logger, or slog.Default() for a hand-built Env without one.
func (e Env) log() *slog.Logger {
	if e.Logger == nil {
		return slog.Default()
	}
	return e.Logger
}

// openBus returns the shared handle of bus, opening it on first use. Names
// are canonicalised so "1", "I2C1" and "/dev/i2c-1" share one handle.
func openBus(logger *slog.Logger, name string) (I2CBus, error) {
	if err := InitHost(logger); err != nil {
		return nil, err
	}
	busMu.Lock()
	defer busMu.Unlock()
	key := canonicalBus(name)
	if b, ok := buses[key]; ok {
		return b, nil
	}
	b, err := i2creg.Open(name)
	if err != nil {
		var present []string
		for _, r := range i2creg.All() {
			present = append(present, r.Name)
		}
		return nil, i2cBusError(name, present, err)
	}
	buses[key] = b
	return b, nil
}

// canonicalBus resolves name the way i2creg.Open does: name, alias, number.
func canonicalBus(name string) string {
	refs := i2creg.All()
	for _, r := range refs {
		if r.Name == name {
			return r.Name
		}
	}
	for _, r := range refs {
		if slices.Contains(r.Aliases, name) {
			return r.Name
		}
	}
	if n, err := strconv.Atoi(name); err == nil {
		for _, r := range refs {
			if r.Number == n {
				return r.Name
			}
		}
	}
	return name
}

// CloseBuses closes every bus DefaultEnv opened. Sensors using them must be
// closed first. A later DefaultEnv I2C call opens the bus again.
func CloseBuses() error {
	busMu.Lock()
	defer busMu.Unlock()
	var errs []error
	for name, b := range buses {
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close i2c bus %s: %w", name, err))
		}
		delete(buses, name)
	}
	return errors.Join(errs...)
}

func lookupPin(logger *slog.Logger, name string) (PinIn, error) {
	if err := InitHost(logger); err != nil {
		return nil, err
	}
	if p := gpioreg.ByName(name); p != nil {
		return p, nil
	}
	return nil, pinError(name, len(gpioreg.All()), hostFailed)
}
