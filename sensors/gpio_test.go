package sensors

import (
	"context"
	"errors"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// fakePin is periph's gpiotest.Pin (In with a pull up/down drives the
// level, float keeps it) plus counters and an injectable In error.
type fakePin struct {
	*gpiotest.Pin
	ins    int   // In calls
	inErr  error // returned by In
	halted bool
}

func newPin(name string) *fakePin { return &fakePin{Pin: &gpiotest.Pin{N: name, Num: 17}} }

var _ gpio.PinIn = (*fakePin)(nil)

func (p *fakePin) Halt() error {
	p.halted = true
	return p.Pin.Halt()
}

func (p *fakePin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.ins++
	if p.inErr != nil {
		return p.inErr
	}
	return p.Pin.In(pull, edge)
}

func (p *fakePin) set(l gpio.Level) {
	p.Lock()
	defer p.Unlock()
	p.L = l
}

func pinEnv(t *testing.T, p *fakePin) Env {
	env := testEnv(t)
	env.Pin = func(name string) (PinIn, error) {
		if name != p.N {
			return nil, errors.New("gpio pin " + name + " not found")
		}
		return p, nil
	}
	return env
}

func TestGPIORead(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     GPIOOpts
		level    gpio.Level // set after Open; ignored with up/down
		wantPull gpio.Pull
		want     float64
	}{
		{"pull up idles high", GPIOOpts{Pin: "GPIO17", Pull: "up"}, gpio.Low, gpio.PullUp, 1},
		{"pull down idles low", GPIOOpts{Pin: "GPIO17", Pull: "down"}, gpio.Low, gpio.PullDown, 0},
		{"float high", GPIOOpts{Pin: "GPIO17", Pull: "float"}, gpio.High, gpio.Float, 1},
		{"float low", GPIOOpts{Pin: "GPIO17", Pull: "float"}, gpio.Low, gpio.Float, 0},
		{"invert high", GPIOOpts{Pin: "GPIO17", Pull: "float", Invert: true}, gpio.High, gpio.Float, 0},
		{"invert low", GPIOOpts{Pin: "GPIO17", Pull: "float", Invert: true}, gpio.Low, gpio.Float, 1},
		{"pull up inverted", GPIOOpts{Pin: "GPIO17", Pull: "up", Invert: true}, gpio.Low, gpio.PullUp, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPin("GPIO17")
			opts := tc.opts
			s, err := open(t, pinEnv(t, p), "gpio", &opts)
			if err != nil {
				t.Fatal(err)
			}
			if tc.opts.Pull == "float" {
				p.set(tc.level)
			}
			for range 2 { // reading does not reconfigure the pin
				v, err := s.Read(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if len(v) != 1 || v[Level] != tc.want {
					t.Errorf("got %v, want level %v", v, tc.want)
				}
			}
			if p.ins != 1 || p.Pull() != tc.wantPull {
				t.Errorf("In called %d times with pull %s, want once with %s", p.ins, p.Pull(), tc.wantPull)
			}
			if err := s.Close(); err != nil || !p.halted {
				t.Errorf("Close = %v, halted %v", err, p.halted)
			}
			_, err = s.Read(context.Background())
			wantErr(t, err, "t: gpio GPIO17: read: sensor is closed")
		})
	}
}

func TestGPIOReadFollowsPin(t *testing.T) {
	p := newPin("GPIO17")
	s, err := open(t, pinEnv(t, p), "gpio", &GPIOOpts{Pin: "GPIO17", Pull: "up"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, l := range []gpio.Level{gpio.Low, gpio.High, gpio.Low} {
		p.set(l)
		v, err := s.Read(context.Background())
		if want := map[gpio.Level]float64{gpio.Low: 0, gpio.High: 1}[l]; err != nil || v[Level] != want {
			t.Errorf("pin %s: got %v, %v; want %v", l, v, err, want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestGPIOOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		pin  *fakePin
		opts GPIOOpts
		want string
	}{
		{"unknown pin", newPin("GPIO17"), GPIOOpts{Pin: "GPIO99", Pull: "up"}, "t: gpio GPIO99: open: gpio pin GPIO99 not found"},
		{"missing pull", newPin("GPIO17"), GPIOOpts{Pin: "GPIO17"}, "t: gpio: pull: required"},
		{"missing pin", newPin("GPIO17"), GPIOOpts{Pull: "up"}, "t: gpio: pin: required"},
		{"line busy", withErr(newPin("GPIO17"), errors.New("line_request ioctl: device or resource busy")), GPIOOpts{Pin: "GPIO17", Pull: "down"},
			"t: gpio GPIO17: open: set input pull down: line in use by another process or a kernel overlay (e.g. w1-gpio): line_request ioctl: device or resource busy"},
		{"in fails", withErr(newPin("GPIO17"), errors.New("permission denied")), GPIOOpts{Pin: "GPIO17", Pull: "down"}, "t: gpio GPIO17: open: set input pull down: permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			_, err := open(t, pinEnv(t, tc.pin), "gpio", &opts)
			wantErr(t, err, tc.want)
		})
	}
}

// TestGPIONilPin: an Env.Pin returning (nil, nil) must not panic.
func TestGPIONilPin(t *testing.T) {
	env := testEnv(t)
	env.Pin = func(string) (PinIn, error) { return nil, nil }
	_, err := open(t, env, "gpio", &GPIOOpts{Pin: "GPIO17", Pull: "up"})
	wantErr(t, err, `t: gpio GPIO17: open: pin not found; use a name such as "GPIO17"`)
}

func withErr(p *fakePin, err error) *fakePin {
	p.inErr = err
	return p
}
