package sensors

// Helpers shared by the GPIO input drivers (gpio, gpio_counter).

import (
	"context"
	"errors"
	"fmt"

	"periph.io/x/conn/v3/gpio"
)

// pulls are the input biases by their config name.
var pulls = map[string]gpio.Pull{"up": gpio.PullUp, "down": gpio.PullDown, "float": gpio.Float}

// checkPinPull is the start of a GPIO input driver's Validate: a pin and
// its pull are set.
func checkPinPull(pin, pull string) error {
	if pin == "" {
		return errors.New(`pin: required; set the GPIO line name, e.g. "GPIO17"`)
	}
	if pull == "" {
		// No default: periph reads an unconfigured pin by silently enabling
		// the pull-up, which is wrong for a sensor that drives the line or
		// a switch to 3.3 V.
		return errors.New("pull: required; set up, down or float to match the wiring (a switch to GND needs up, a switch to 3.3V needs down, a driven signal float): there is no safe default, and reading an unconfigured pin silently enables the pull-up")
	}
	if _, ok := pulls[pull]; !ok {
		return fmt.Errorf("pull: %q is not valid; use up, down or float", pull)
	}
	return nil
}

// openPin is the start of a GPIO input driver's Open: check ctx, then
// look the pin up.
func openPin(ctx context.Context, env Env, id, name string) (PinIn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	p, err := env.Pin(name)
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	if p == nil {
		return nil, fmt.Errorf("%s: open: pin not found; use a name such as \"GPIO17\"", id)
	}
	return p, nil
}
