package sensors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"periph.io/x/conn/v3/gpio"
)

// GPIOOpts configures the gpio driver, a digital input polled on each Read.
type GPIOOpts struct {
	// Pin is the GPIO line name, e.g. "GPIO17".
	Pin string `yaml:"pin"`
	// Pull is the input bias: "up", "down" or "float". Required.
	Pull string `yaml:"pull"`
	// Invert reports level 1 when the pin is low (active-low wiring).
	Invert bool `yaml:"invert"`
}

// DefaultGPIOOpts are the defaults NewOpts returns for gpio. Pin and Pull
// have no default: both depend on the wiring.
var DefaultGPIOOpts = GPIOOpts{}

var pulls = map[string]gpio.Pull{"up": gpio.PullUp, "down": gpio.PullDown, "float": gpio.Float}

// Validate implements Validator.
func (o *GPIOOpts) Validate() error {
	if o.Pin == "" {
		return errors.New(`pin: required; set the GPIO line name, e.g. "GPIO17"`)
	}
	if o.Pull == "" {
		// No default: periph reads an unconfigured pin by silently enabling
		// the pull-up, which is wrong for a sensor that drives the line or
		// a switch to 3.3 V.
		return errors.New("pull: required; set up, down or float to match the wiring (a switch to GND needs up, a switch to 3.3V needs down, a driven signal float): there is no safe default, and reading an unconfigured pin silently enables the pull-up")
	}
	if _, ok := pulls[o.Pull]; !ok {
		return fmt.Errorf("pull: %q is not valid; use up, down or float", o.Pull)
	}
	return nil
}

func init() {
	Register(Driver{
		Name: "gpio",
		Doc:  "digital input on a GPIO pin: level (0/1)",
		NewOpts: func() any {
			o := DefaultGPIOOpts
			return &o
		},
		Open: openGPIO,
	})
}

type gpioSensor struct {
	id     string // "door: gpio GPIO17", prefix of every error
	invert bool

	mu  sync.Mutex
	pin PinIn
}

var _ Sensor = (*gpioSensor)(nil)

func openGPIO(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, err := openOpts[GPIOOpts](env, "gpio", opts)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s: gpio %s", env.Name, o.Pin)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	p, err := env.Pin(o.Pin)
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	if p == nil {
		return nil, fmt.Errorf("%s: open: pin not found; use a name such as \"GPIO17\"", id)
	}
	// Configure once: the pull is applied here, and Read then only samples.
	if err := p.In(pulls[o.Pull], gpio.NoEdge); err != nil {
		if strings.Contains(err.Error(), "busy") {
			return nil, fmt.Errorf("%s: open: set input pull %s: line in use by another process or a kernel overlay (e.g. w1-gpio): %w", id, o.Pull, err)
		}
		return nil, fmt.Errorf("%s: open: set input pull %s: %w", id, o.Pull, err)
	}
	return &gpioSensor{id: id, invert: o.Invert, pin: p}, nil
}

func (s *gpioSensor) Read(ctx context.Context) (Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pin == nil {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	high := s.pin.Read() == gpio.High
	if high != s.invert {
		return Values{Level: 1}, nil
	}
	return Values{Level: 0}, nil
}

// Close halts the pin; Open configures it again.
func (s *gpioSensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pin == nil {
		return nil
	}
	err := s.pin.Halt()
	s.pin = nil
	if err != nil {
		return fmt.Errorf("%s: close: %w", s.id, err)
	}
	return nil
}
