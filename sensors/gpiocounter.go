package sensors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// GPIOCounterOpts configures gpio_counter: pulses on a GPIO pin counted
// between reads (rain gauge tips, anemometer turns, flow meter pulses).
type GPIOCounterOpts struct {
	// Pin is the GPIO line name, e.g. "GPIO27".
	Pin string `yaml:"pin"`
	// Pull is the input bias: up, down or float. Required (see gpio).
	Pull string `yaml:"pull"`
	// Edge is the edge counted: falling, rising or both.
	Edge string `yaml:"edge"`
	// Debounce ignores edges that follow another edge within this time
	// (a reed switch bounces for a few milliseconds).
	Debounce Duration `yaml:"debounce"`
	// Scale converts pulses into Name's unit: per pulse when Per is
	// "pulse" (0.2794 mm of rain per tip), per pulse per second when Per
	// is "hz" (2.4 km/h of wind per Hz).
	Scale float64 `yaml:"scale"`
	Per   string  `yaml:"per"`
	// Name is the scaled value's name, with its unit (rain_mm,
	// wind_speed_kmh), under the key `value` (`name` is the sensor's).
	// Empty: only count and rate_per_s are reported.
	Name string `yaml:"value"`
}

// DefaultGPIOCounterOpts are the defaults NewOpts returns for gpio_counter.
var DefaultGPIOCounterOpts = GPIOCounterOpts{Edge: "falling", Debounce: Duration(5 * time.Millisecond), Scale: 1, Per: "pulse"}

var edges = map[string]gpio.Edge{"falling": gpio.FallingEdge, "rising": gpio.RisingEdge, "both": gpio.BothEdges}

// Validate implements Validator.
func (o *GPIOCounterOpts) Validate() error {
	if err := checkPinPull(o.Pin, o.Pull); err != nil {
		return err
	}
	if _, ok := edges[o.Edge]; !ok {
		return fmt.Errorf("edge: %q is not valid; use falling, rising or both", o.Edge)
	}
	if o.Debounce < 0 || o.Debounce.D() > time.Second {
		return fmt.Errorf("debounce: %s; use 0 to 1s (a few ms for a reed switch)", o.Debounce)
	}
	if o.Per != "pulse" && o.Per != "hz" {
		return fmt.Errorf("per: %q is not valid; use pulse (scale per pulse) or hz (scale per pulse per second)", o.Per)
	}
	if o.Name != "" && !ValueName.MatchString(o.Name) {
		return fmt.Errorf("value: %q; use lowercase letters, digits and _ ending in the unit, e.g. rain_mm", o.Name)
	}
	if o.Name != "" && o.Scale == 0 {
		return errors.New("scale: 0 would make the value always 0; give the units per pulse (e.g. 0.2794 for a rain gauge)")
	}
	return nil
}

func init() {
	Register(Driver{
		Name:    "gpio_counter",
		Doc:     "pulses counted on a GPIO pin between reads: count, rate_per_s and a scaled value (rain, wind, flow)",
		NewOpts: defaults(DefaultGPIOCounterOpts),
		Open:    openGPIOCounter,
		Limits:  map[string]Range{"rate_per_s": {0, 10000}},
	})
}

// edgeWait bounds each WaitForEdge so Close is noticed: periph's
// gpioioctl treats -1 as "return at once" and 0 as "forever".
const edgeWait = 250 * time.Millisecond

type gpioCounter struct {
	id   string
	opts GPIOCounterOpts
	pin  PinIn
	now  func() time.Time

	mu       sync.Mutex
	count    int64
	lastEdge time.Time // last edge seen, counted or not, for debounce
	since    time.Time // start of the current interval
	closed   bool

	stop chan struct{}
	done chan struct{}
}

var _ Sensor = (*gpioCounter)(nil)

func openGPIOCounter(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, err := openOpts[GPIOCounterOpts](env, "gpio_counter", opts)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s: gpio_counter %s", env.Name, o.Pin)
	pin, err := openPin(ctx, env, id, o.Pin)
	if err != nil {
		return nil, err
	}
	if err := pin.In(pulls[o.Pull], edges[o.Edge]); err != nil {
		return nil, fmt.Errorf("%s: open: set input pull %s edge %s: %w", id, o.Pull, o.Edge, err)
	}
	c := &gpioCounter{id: id, opts: *o, pin: pin, now: time.Now, stop: make(chan struct{}), done: make(chan struct{})}
	c.since = c.now()
	go c.watch()
	return c, nil
}

// watch counts edges until Close. The kernel queues edges, so none are
// missed while this goroutine is between waits.
func (c *gpioCounter) watch() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		if !c.pin.WaitForEdge(edgeWait) {
			continue
		}
		t := c.now()
		c.mu.Lock()
		// An edge counts after the line was quiet for the debounce
		// time: a bouncing contact gives one count per press.
		if c.lastEdge.IsZero() || t.Sub(c.lastEdge) >= c.opts.Debounce.D() {
			c.count++
		}
		c.lastEdge = t
		c.mu.Unlock()
	}
}

// Read returns the pulses since the previous Read. The count is taken and
// reset under one lock, so a pulse lands in exactly one interval.
func (c *gpioCounter) Read(ctx context.Context) (Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", c.id, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: read: sensor is closed", c.id)
	}
	now := c.now()
	n, elapsed := c.count, now.Sub(c.since)
	c.count, c.since = 0, now
	c.mu.Unlock()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(n) / elapsed.Seconds()
	}
	v := Values{"count": float64(n), "rate_per_s": round4(rate)}
	if c.opts.Name != "" {
		if c.opts.Per == "hz" {
			v[c.opts.Name] = round4(rate * c.opts.Scale)
		} else {
			v[c.opts.Name] = round4(float64(n) * c.opts.Scale)
		}
	}
	return v, nil
}

func round4(v float64) float64 {
	return float64(int64(v*10000+0.5*sign(v))) / 10000
}

func sign(v float64) float64 {
	if v < 0 {
		return -1
	}
	return 1
}

// Close stops counting and releases the pin.
func (c *gpioCounter) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	err := c.pin.Halt() // interrupts a pending WaitForEdge on real hardware
	<-c.done
	if err != nil {
		return fmt.Errorf("%s: close: %w", c.id, err)
	}
	return nil
}
