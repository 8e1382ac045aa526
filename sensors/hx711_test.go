package sensors

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// hx711Chip simulates the HX711's serial interface (datasheet, "Serial
// Interface"): DOUT high while converting; it falls when a conversion is
// ready; each PD_SCK rising edge then shifts out one bit, MSB first, of the
// 24-bit two's-complement result; the 25th edge pulls DOUT high again, and
// 1, 2 or 3 more edges (25, 26 or 27 in all) select gain 128, 32 or 64 for
// the next conversion.
//
// periph's own hx711 tests do not simulate the protocol (their reads
// return 0), and gpiotest.Pin only holds a level, so this pair of pins is
// built on gpiotest.Pin with the protocol added: hx711Clk counts rising
// edges and drives DOUT; hx711Data makes the next conversion ready when
// the driver waits for the falling edge.
type hx711Chip struct {
	mu      sync.Mutex
	samples []int32 // conversions still to come
	dout    gpio.Level
	inFrame bool   // a conversion is being (or was) clocked out
	cur     uint32 // its 24 bits
	bit     int    // rising edges in the current frame
	pulses  []int  // rising edges per frame
	early   int    // rising edges while no conversion was ready
	stale   int    // WaitForEdge calls to answer with a queued old edge
	now     time.Time
}

func newHX711Chip(samples ...int32) *hx711Chip {
	return &hx711Chip{samples: samples, dout: gpio.High, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *hx711Chip) clock() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *hx711Chip) rise() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inFrame {
		c.early++
		return
	}
	switch {
	case c.bit < 24:
		c.dout = gpio.Level(c.cur>>(23-c.bit)&1 == 1)
	case c.bit == 24:
		c.dout = gpio.High
	}
	c.bit++
	c.pulses[len(c.pulses)-1] = c.bit
}

type hx711Clk struct {
	*gpiotest.Pin
	c      *hx711Chip
	outErr error
}

func (p *hx711Clk) Out(l gpio.Level) error {
	if p.outErr != nil {
		return p.outErr
	}
	_ = p.Pin.Out(l)
	if l == gpio.High {
		p.c.rise()
	}
	return nil
}

type hx711Data struct {
	*gpiotest.Pin
	c    *hx711Chip
	edge gpio.Edge
}

// In records the edge; the level is the chip's, whatever the pull.
func (p *hx711Data) In(pull gpio.Pull, edge gpio.Edge) error {
	p.edge = edge
	return nil
}

func (p *hx711Data) Read() gpio.Level {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return p.c.dout
}

func (p *hx711Data) WaitForEdge(timeout time.Duration) bool {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if timeout <= 0 {
		panic("WaitForEdge with a timeout <= 0 waits forever or not at all on gpioioctl")
	}
	if c.stale > 0 { // an edge queued by the last read's data bits
		c.stale--
		return true
	}
	if len(c.samples) == 0 { // nothing converts: time out
		c.now = c.now.Add(timeout)
		return false
	}
	c.cur = uint32(c.samples[0]) & 0xffffff
	c.samples = c.samples[1:]
	c.inFrame, c.bit, c.dout = true, 0, gpio.Low
	c.pulses = append(c.pulses, 0)
	return true
}

// hx711Env serves the chip's two pins as GPIO5 (PD_SCK) and GPIO6 (DOUT).
func hx711Env(t *testing.T, c *hx711Chip) (Env, *hx711Clk, *hx711Data) {
	clk := &hx711Clk{Pin: &gpiotest.Pin{N: "GPIO5", Num: 5}, c: c}
	data := &hx711Data{Pin: &gpiotest.Pin{N: "GPIO6", Num: 6}, c: c}
	env := testEnv(t)
	env.Pin = func(name string) (PinIn, error) {
		switch name {
		case "GPIO5":
			return clk, nil
		case "GPIO6":
			return data, nil
		}
		return nil, errors.New("gpio pin " + name + " not found")
	}
	return env, clk, data
}

// withClock gives o the chip's clock.
func withClock(o *HX711Opts, c *hx711Chip) *HX711Opts {
	o.now = c.clock
	return o
}

func hx711Opts(gain, samples, tare int, scale float64, name string) *HX711Opts {
	return &HX711Opts{ClockPin: "GPIO5", DataPin: "GPIO6", Gain: gain, Samples: samples, Tare: tare, Scale: scale, Name: name}
}

func TestHX711Read(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    *HX711Opts
		samples []int32 // the first is read by Open to set the gain
		stale   int
		pulses  int // per frame
		want    float64
	}{
		{
			// 5 samples: the lowest (107990) and highest (250000, a
			// corrupted read) are dropped: mean(108000, 108010, 108020) =
			// 108010; (108010 - 8010) × 0.0001 = 10 kg.
			name:    "gain 128, outlier dropped",
			opts:    hx711Opts(128, 5, 8010, 0.0001, "weight_kg"),
			samples: []int32{12345, 108000, 108010, 107990, 108020, 250000},
			pulses:  25,
			want:    10,
		},
		{
			// Negative counts are 24-bit two's complement: -1000 = 0xfffc18.
			// mean(-1000) after trimming; (-1000 - -500) × -0.002 = 1 N.
			name:    "gain 64, negative counts",
			opts:    hx711Opts(64, 3, -500, -0.002, "load_n"),
			samples: []int32{0, -1010, -1000, -990},
			pulses:  27,
			want:    1,
		},
		{
			// Two edges queued by the previous read's data bits make
			// WaitForEdge return while DOUT is still high; the driver must
			// look at the level again rather than clock a conversion that
			// is not ready.
			name:    "gain 32 (channel B), stale edges",
			opts:    hx711Opts(32, 1, 0, 0.5, "tension_kg"),
			samples: []int32{7, 4096},
			stale:   2,
			pulses:  26,
			want:    2048,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chip := newHX711Chip(tc.samples...)
			env, clk, data := hx711Env(t, chip)
			s, err := open(t, env, "hx711", withClock(tc.opts, chip))
			if err != nil {
				t.Fatal(err)
			}
			if data.edge != gpio.FallingEdge {
				t.Errorf("DOUT configured with edge %s, want falling", data.edge)
			}
			chip.mu.Lock()
			chip.stale = tc.stale
			chip.mu.Unlock()
			got, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[tc.opts.Name] != tc.want {
				t.Errorf("got %v, want %s = %v", got, tc.opts.Name, tc.want)
			}
			chip.mu.Lock()
			if chip.early != 0 {
				t.Errorf("%d clock pulses while no conversion was ready", chip.early)
			}
			if len(chip.pulses) != len(tc.samples) {
				t.Errorf("%d conversions read, want %d", len(chip.pulses), len(tc.samples))
			}
			for i, n := range chip.pulses {
				if n != tc.pulses {
					t.Errorf("conversion %d: %d clock pulses, want %d (gain %d)", i, n, tc.pulses, tc.opts.Gain)
				}
			}
			chip.mu.Unlock()
			if clk.Read() != gpio.Low {
				t.Error("PD_SCK left high while open: the chip powers down after 60 µs")
			}
			for range 2 {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if clk.Read() != gpio.High {
				t.Error("Close did not power the chip down (PD_SCK high)")
			}
			_, err = s.Read(context.Background())
			wantErr(t, err, "t: hx711 GPIO5/GPIO6: read: sensor is closed")
		})
	}
}

func TestHX711Errors(t *testing.T) {
	t.Parallel()
	const id = "t: hx711 GPIO5/GPIO6: "
	for _, tc := range []struct {
		name    string
		samples []int32
		openErr string
		readErr string
	}{
		{"no conversion at open", nil,
			id + "open: no data from the HX711 (DOUT stayed high) within 1s: check power, the wiring and that data_pin is DOUT", ""},
		{"conversions stop", []int32{1, 100, 101}, "",
			id + "read: no data from the HX711 (DOUT stayed high)"},
		{"saturated high", []int32{1, 100, 0x7fffff}, "",
			id + "read: input out of range (raw 8388607, the saturation code): check the load cell wiring, or use a lower gain"},
		{"saturated low", []int32{1, -0x800000}, "",
			id + "read: input out of range (raw -8388608, the saturation code)"},
		{"stuck", []int32{0, 0, 0, 0, 0, 0}, "",
			id + "read: all 5 samples are exactly 0: DOUT seems stuck; check data_pin's wiring"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chip := newHX711Chip(tc.samples...)
			env, clk, _ := hx711Env(t, chip)
			s, err := open(t, env, "hx711", withClock(hx711Opts(128, 5, 0, 1, "weight_kg"), chip))
			if tc.openErr != "" {
				wantErr(t, err, tc.openErr)
				if clk.Read() != gpio.High {
					t.Error("a failed open left the chip powered")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Read(context.Background())
			wantErr(t, err, tc.readErr)
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		chip := newHX711Chip(1)
		env, _, _ := hx711Env(t, chip)
		s, err := open(t, env, "hx711", withClock(hx711Opts(128, 5, 0, 1, "weight_kg"), chip))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
	t.Run("clock pin input only", func(t *testing.T) {
		env := testEnv(t)
		env.Pin = func(name string) (PinIn, error) {
			return struct{ gpio.PinIn }{&gpiotest.Pin{N: name}}, nil
		}
		_, err := open(t, env, "hx711", hx711Opts(128, 5, 0, 1, "weight_kg"))
		wantErr(t, err, id+"open: clock_pin GPIO5 cannot be driven as an output (struct { gpio.PinIn }); use a GPIO line of the Pi's header")
	})
	t.Run("clock pin fails", func(t *testing.T) {
		chip := newHX711Chip(1)
		env, clk, _ := hx711Env(t, chip)
		clk.outErr = errors.New("line_request ioctl: device or resource busy")
		_, err := open(t, env, "hx711", withClock(hx711Opts(128, 5, 0, 1, "weight_kg"), chip))
		wantErr(t, err, id+"open: configure the pins: line_request ioctl: device or resource busy")
	})
	t.Run("unknown pin", func(t *testing.T) {
		chip := newHX711Chip(1)
		env, _, _ := hx711Env(t, chip)
		o := hx711Opts(128, 5, 0, 1, "weight_kg")
		o.DataPin = "GPIO99"
		_, err := open(t, env, "hx711", withClock(o, chip))
		wantErr(t, err, "t: hx711 GPIO5/GPIO99: open: data_pin: gpio pin GPIO99 not found")
	})
}

func TestHX711Validate(t *testing.T) {
	t.Parallel()
	ok := func(f func(o *HX711Opts)) *HX711Opts {
		o := hx711Opts(128, 5, 0, 0.001, "weight_kg")
		f(o)
		return o
	}
	for _, tc := range []struct {
		name string
		o    *HX711Opts
		want string
	}{
		{"ok", ok(func(*HX711Opts) {}), ""},
		{"defaults lack pins", func() *HX711Opts { o := DefaultHX711Opts; return &o }(), `clock_pin: required; set the GPIO wired to PD_SCK, e.g. "GPIO5"`},
		{"data pin", ok(func(o *HX711Opts) { o.DataPin = "" }), `data_pin: required; set the GPIO wired to DOUT, e.g. "GPIO6"`},
		{"same pin", ok(func(o *HX711Opts) { o.DataPin = "GPIO5" }), "data_pin: GPIO5 is also clock_pin"},
		{"gain", ok(func(o *HX711Opts) { o.Gain = 16 }), "gain: 16 is not supported; use 128 or 64 (channel A) or 32 (channel B)"},
		{"tare", ok(func(o *HX711Opts) { o.Tare = 1 << 23 }), "tare: 8388608 is outside the 24-bit range"},
		{"scale", ok(func(o *HX711Opts) { o.Scale = 0 }), "scale: required (value per count); to calibrate, set scale: 1 and tare: 0"},
		{"value", ok(func(o *HX711Opts) { o.Name = "weight" }), `value: "weight" is not a value name; use lowercase snake_case ending in a unit, e.g. weight_kg`},
		{"samples", ok(func(o *HX711Opts) { o.Samples = 0 }), "samples: 0; use 1..50"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tc.want)
		})
	}
	if m := hx711Mean([]int32{5, 1}); m != 3 {
		t.Errorf("mean of two = %v, want 3 (nothing dropped)", m)
	}
}
