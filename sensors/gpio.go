package sensors

import (
	"context"
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

// Validate implements Validator.
func (o *GPIOOpts) Validate() error { return checkPinPull(o.Pin, o.Pull) }

func init() {
	Register(Driver{
		Name:    "gpio",
		Doc:     "digital input on a GPIO pin: level (0/1)",
		NewOpts: defaults(DefaultGPIOOpts),
		Open:    openGPIO,
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
	p, err := openPin(ctx, env, id, o.Pin)
	if err != nil {
		return nil, err
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
func (s *gpioSensor) Close() error { return closeHalt(&s.mu, s.id, &s.pin) }
