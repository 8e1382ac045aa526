package sensors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/devices/v3/hx711"
)

// HX711Opts configures the hx711 driver (Avia HX711 24-bit load-cell ADC,
// bit-banged on two GPIO pins): value = (raw - tare) × scale.
type HX711Opts struct {
	// ClockPin is the GPIO wired to PD_SCK, e.g. "GPIO5". Required.
	ClockPin string `yaml:"clock_pin"`
	// DataPin is the GPIO wired to DOUT, e.g. "GPIO6". Required.
	DataPin string `yaml:"data_pin"`
	// Gain is 128 or 64 (channel A) or 32 (channel B).
	Gain int `yaml:"gain"`
	// Tare is the raw count with no load.
	Tare int `yaml:"tare"`
	// Scale is the value per count, e.g. kg per count. Required: to
	// calibrate, set scale: 1 and tare: 0, read the raw count with no load
	// (that is the tare) and with a known load W; scale = W / (raw - tare).
	Scale float64 `yaml:"scale"`
	// Name is the value's name with its unit.
	Name string `yaml:"value"`
	// Samples is how many conversions make one reading (the HX711 makes 10
	// or 80 a second, set by its RATE pin). With 3 or more the highest and
	// lowest are dropped before averaging, which removes a sample
	// corrupted by a bit-banging hiccup.
	Samples int `yaml:"samples"`

	now func() time.Time // the clock, for tests; nil means time.Now
}

// DefaultHX711Opts are the defaults NewOpts returns for hx711. The pins and
// the scale have no default: they depend on the wiring and the load cell.
var DefaultHX711Opts = HX711Opts{
	Gain:    128,
	Name:    "weight_kg",
	Samples: 5,
}

const (
	hx711MaxSamples = 50
	// hx711ReadyWait bounds the wait for one conversion: 100 ms at 10
	// samples/s, 400 ms to settle after power-up or a gain change
	// (datasheet).
	hx711ReadyWait = time.Second
	// hx711Poll is the longest single WaitForEdge: the loop re-checks the
	// level after every edge and ctx between waits.
	hx711Poll = 50 * time.Millisecond
)

var (
	hx711Gains = map[int]hx711.InputMode{
		128: hx711.CHANNEL_A_GAIN_128,
		64:  hx711.CHANNEL_A_GAIN_64,
		32:  hx711.CHANNEL_B_GAIN_32,
	}

	errHX711NotReady = errors.New("no data from the HX711 (DOUT stayed high)")
)

// Validate implements Validator.
func (o *HX711Opts) Validate() error {
	switch {
	case o.ClockPin == "":
		return errors.New(`clock_pin: required; set the GPIO wired to PD_SCK, e.g. "GPIO5"`)
	case o.DataPin == "":
		return errors.New(`data_pin: required; set the GPIO wired to DOUT, e.g. "GPIO6"`)
	case o.ClockPin == o.DataPin:
		return fmt.Errorf("data_pin: %s is also clock_pin; PD_SCK and DOUT need a pin each", o.DataPin)
	}
	if _, ok := hx711Gains[o.Gain]; !ok {
		return fmt.Errorf("gain: %d is not supported; use 128 or 64 (channel A) or 32 (channel B)", o.Gain)
	}
	if o.Tare < -(1<<23) || o.Tare >= 1<<23 {
		return fmt.Errorf("tare: %d is outside the 24-bit range -8388608..8388607", o.Tare)
	}
	if o.Scale == 0 {
		return errors.New("scale: required (value per count); to calibrate, set scale: 1 and tare: 0, read the raw count with no load (the tare) and with a known load W: scale = W / (raw - tare)")
	}
	if !UnitValueName.MatchString(o.Name) {
		return fmt.Errorf("value: %q is not a value name; use lowercase snake_case ending in a unit, e.g. weight_kg", o.Name)
	}
	if o.Samples < 1 || o.Samples > hx711MaxSamples {
		return fmt.Errorf("samples: %d; use 1..%d conversions per reading", o.Samples, hx711MaxSamples)
	}
	return nil
}

func init() {
	Register(Driver{
		Name:    "hx711",
		Doc:     "Avia HX711 load-cell ADC on two GPIO pins: one value, (raw - tare) × scale (default weight_kg)",
		NewOpts: defaults(DefaultHX711Opts),
		Open:    openHX711,
		// No Limits: the value is named and scaled by the user.
	})
}

// hx711Sensor wraps periph's hx711.Dev.
//
// periph's ReadTimeout waits for one falling edge on DOUT when it is high
// and then clocks the data out without looking at DOUT again. Edges queue
// up in the kernel (gpioioctl), and every read makes several (the data
// bits), so a stale edge would start a read in the middle of a
// conversion. waitReady therefore waits for the level: it re-reads DOUT
// after every edge and in between polls, and ReadTimeout is only called
// once DOUT is low (it then reads at once; DOUT stays low until read).
type hx711Sensor struct {
	id    string // "hive: hx711 GPIO5/GPIO6", prefix of every error
	o     HX711Opts
	clk   gpio.PinOut
	data  gpio.PinIn
	now   func() time.Time // the clock; tests replace it
	ready time.Duration    // per conversion

	mu  sync.Mutex // Read and Close may race when the scheduler gives up on a Read
	dev *hx711.Dev
}

var _ Sensor = (*hx711Sensor)(nil)

func openHX711(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, err := openOpts[HX711Opts](env, "hx711", opts)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s: hx711 %s/%s", env.Name, o.ClockPin, o.DataPin)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	cp, err := env.Pin(o.ClockPin)
	if err != nil {
		return nil, fmt.Errorf("%s: open: clock_pin: %w", id, err)
	}
	clk, ok := cp.(gpio.PinOut)
	if cp == nil || !ok {
		return nil, fmt.Errorf("%s: open: clock_pin %s cannot be driven as an output (%T); use a GPIO line of the Pi's header", id, o.ClockPin, cp)
	}
	data, err := env.Pin(o.DataPin)
	if err != nil {
		return nil, fmt.Errorf("%s: open: data_pin: %w", id, err)
	}
	if data == nil {
		return nil, fmt.Errorf("%s: open: data_pin %s not found", id, o.DataPin)
	}
	// New configures DOUT as an input with falling-edge detection and
	// drives PD_SCK low, which also powers the chip up.
	dev, err := hx711.New(clk, data)
	if err != nil {
		return nil, fmt.Errorf("%s: open: configure the pins: %w", id, err)
	}
	s := &hx711Sensor{id: id, o: *o, clk: clk, data: data, now: or(o.now, time.Now), ready: hx711ReadyWait, dev: dev}
	if err := s.setGain(ctx); err != nil {
		_ = clk.Out(gpio.High) // power down again
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	return s, nil
}

// setGain reads one conversion with the gain's number of extra clock
// pulses, which select the gain of the next conversion; it also proves
// the chip answers. periph's SetInputMode clocks without waiting for DOUT,
// so the wait comes first. The chip may run a gain left by an earlier run,
// so this is done for 128 too.
func (s *hx711Sensor) setGain(ctx context.Context) error {
	if err := s.waitReady(ctx); err != nil {
		if errors.Is(err, errHX711NotReady) {
			return fmt.Errorf("%w within %s: check power, the wiring and that data_pin is DOUT", err, s.ready)
		}
		return err
	}
	if err := s.dev.SetInputMode(hx711Gains[s.o.Gain]); err != nil {
		return fmt.Errorf("set gain %d: %w", s.o.Gain, err)
	}
	return nil
}

// waitReady waits until DOUT is low (a conversion is ready), at most
// s.ready.
func (s *hx711Sensor) waitReady(ctx context.Context) error {
	deadline := s.now().Add(s.ready)
	for !s.dev.IsReady() {
		if err := ctx.Err(); err != nil {
			return err
		}
		left := deadline.Sub(s.now())
		if left <= 0 {
			return errHX711NotReady
		}
		// Never 0 or negative: gpioioctl treats 0 as "forever" and -1 as
		// "return at once" (periph/host#78).
		s.data.WaitForEdge(min(left, hx711Poll))
	}
	return nil
}

// Read averages Samples conversions.
func (s *hx711Sensor) Read(ctx context.Context) (Values, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	raws := make([]int32, 0, s.o.Samples)
	for range s.o.Samples {
		if err := s.waitReady(ctx); err != nil {
			return nil, fmt.Errorf("%s: read: %w", s.id, err)
		}
		raw, err := s.dev.ReadTimeout(s.ready) // DOUT is low: no wait
		if err != nil {
			return nil, fmt.Errorf("%s: read: %w", s.id, err)
		}
		// The chip outputs 0x7fffff / 0x800000 while the input is beyond
		// its range (datasheet).
		if raw >= 1<<23-1 || raw <= -(1<<23) {
			return nil, fmt.Errorf("%s: read: input out of range (raw %d, the saturation code): check the load cell wiring, or use a lower gain", s.id, raw)
		}
		raws = append(raws, raw)
	}
	if len(raws) >= 3 && slices.Min(raws) == slices.Max(raws) {
		// A real load cell is never that quiet at 24 bits.
		return nil, fmt.Errorf("%s: read: all %d samples are exactly %d: DOUT seems stuck; check data_pin's wiring", s.id, len(raws), raws[0])
	}
	mean := hx711Mean(raws)
	return Values{s.o.Name: roundSig((mean-float64(s.o.Tare))*s.o.Scale, 6)}, nil
}

// hx711Mean averages the samples; with 3 or more it drops the lowest and
// the highest first.
func hx711Mean(raws []int32) float64 {
	r := slices.Clone(raws)
	slices.Sort(r)
	if len(r) >= 3 {
		r = r[1 : len(r)-1]
	}
	var sum int64
	for _, x := range r {
		sum += int64(x)
	}
	return float64(sum) / float64(len(r))
}

// Close powers the chip down (PD_SCK high for more than 60 µs, datasheet);
// Open powers it up again, which also resets it. It is idempotent.
func (s *hx711Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil
	}
	s.dev = nil
	err := s.clk.Out(gpio.High)
	if herr := s.data.Halt(); err == nil {
		err = herr
	}
	if err != nil {
		return fmt.Errorf("%s: close: %w", s.id, err)
	}
	return nil
}
