package sensors

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

func counterEnv(t *testing.T, p *gpiotest.Pin) Env {
	env := testEnv(t)
	env.Pin = func(name string) (PinIn, error) {
		if name != p.N {
			return nil, errors.New("gpio pin " + name + " not found")
		}
		return p, nil
	}
	return env
}

// pulse sends n edges gap apart and waits until the counter took them.
func pulse(p *gpiotest.Pin, n int, gap time.Duration) {
	for range n {
		p.EdgesChan <- gpio.Low
		synctest.Wait()
		time.Sleep(gap)
	}
}

func TestGPIOCounter(t *testing.T) {
	tests := []struct {
		name      string
		opts      GPIOCounterOpts
		intervals [][2]int // per interval: pulses, then ms between them
		want      []Values
	}{
		{"rain gauge", GPIOCounterOpts{Name: "rain_mm", Scale: 0.2794, Per: "pulse"},
			[][2]int{{3, 100}, {0, 100}, {10, 50}},
			[]Values{{"count": 3, "rate_per_s": 1, "rain_mm": 0.8382}, {"count": 0, "rate_per_s": 0, "rain_mm": 0}, {"count": 10, "rate_per_s": 3.3333, "rain_mm": 2.794}}},
		{"anemometer in Hz", GPIOCounterOpts{Name: "wind_speed_kmh", Scale: 2.4, Per: "hz"},
			[][2]int{{30, 20}},
			[]Values{{"count": 30, "rate_per_s": 10, "wind_speed_kmh": 24}}},
		{"bounces ignored", GPIOCounterOpts{Debounce: Duration(10 * time.Millisecond)},
			[][2]int{{6, 2}}, // 6 edges 2 ms apart: one press
			[]Values{{"count": 1, "rate_per_s": 0.3333}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level)}
				o := DefaultGPIOCounterOpts
				o.Pin, o.Pull = "GPIO27", "up"
				if tt.opts.Name != "" {
					o.Name, o.Scale, o.Per = tt.opts.Name, tt.opts.Scale, tt.opts.Per
				}
				if tt.opts.Debounce != 0 {
					o.Debounce = tt.opts.Debounce
				}
				if err := o.Validate(); err != nil {
					t.Fatal(err)
				}
				s, err := open(t, counterEnv(t, p), "gpio_counter", &o)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				for i, iv := range tt.intervals {
					start := time.Now()
					pulse(p, iv[0], time.Duration(iv[1])*time.Millisecond)
					// Every interval lasts 3 s in all.
					time.Sleep(3*time.Second - time.Since(start))
					got, err := s.Read(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					for k, w := range tt.want[i] {
						if got[k] != w {
							t.Errorf("interval %d: %s = %v, want %v (all: %v)", i, k, got[k], w, got)
						}
					}
				}
			})
		})
	}
}

func TestGPIOCounterLosesNoPulseAcrossReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level)}
		o := DefaultGPIOCounterOpts
		o.Pin, o.Pull, o.Debounce = "GPIO27", "up", 0
		s, err := open(t, counterEnv(t, p), "gpio_counter", &o)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		total, want := 0, 0
		// Reads interleaved with pulses: every pulse is in exactly one.
		for i := range 50 {
			pulse(p, i%4, time.Millisecond)
			v, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if int(v["count"]) != i%4 {
				t.Fatalf("read %d: count %v, want %d", i, v["count"], i%4)
			}
			total += int(v["count"])
			want += i % 4
		}
		if total != want {
			t.Fatalf("total %d, want %d", total, want)
		}
	})
}

func TestGPIOCounterErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts GPIOCounterOpts
		want string
	}{
		{"missing pull", GPIOCounterOpts{Pin: "GPIO27", Edge: "falling", Per: "pulse"}, "pull: required"},
		{"bad edge", GPIOCounterOpts{Pin: "GPIO27", Pull: "up", Edge: "down", Per: "pulse"}, `edge: "down" is not valid`},
		{"bad per", GPIOCounterOpts{Pin: "GPIO27", Pull: "up", Edge: "both", Per: "minute"}, `per: "minute"`},
		{"bad name", GPIOCounterOpts{Pin: "GPIO27", Pull: "up", Edge: "both", Per: "pulse", Name: "Rain mm", Scale: 1}, `value: "Rain mm"`},
		{"zero scale", GPIOCounterOpts{Pin: "GPIO27", Pull: "up", Edge: "both", Per: "pulse", Name: "rain_mm"}, "scale: 0"},
		{"long debounce", GPIOCounterOpts{Pin: "GPIO27", Pull: "up", Edge: "both", Per: "pulse", Debounce: Duration(2 * time.Second)}, "debounce: 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.opts.Validate(), tc.want)
		})
	}
	// No EdgesChan: the pin cannot do edges, In fails and Open says so.
	p := &gpiotest.Pin{N: "GPIO27"}
	o := DefaultGPIOCounterOpts
	o.Pin, o.Pull = "GPIO27", "up"
	_, err := open(t, counterEnv(t, p), "gpio_counter", &o)
	wantErr(t, err, "t: gpio_counter GPIO27: open: set input pull up edge falling")
	// Closed sensor.
	p = &gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level)}
	s, err := open(t, counterEnv(t, p), "gpio_counter", &o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(context.Background())
	wantErr(t, err, "sensor is closed")
}
