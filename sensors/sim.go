package sensors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// SimOpts configures the sim driver: deterministic values for the demo,
// tests and benchmarks. Reading n of an opened sensor is a pure function of
// n (0-based count of Read calls on it, failed ones included), never of the
// wall clock; a re-opened sensor starts again at n = 0.
type SimOpts struct {
	// Count is how many Reads give a value or an error before Read returns
	// ErrDone. 0 means unlimited.
	Count int `yaml:"count"`
	// Waveform is sine, sawtooth, square or constant.
	Waveform string `yaml:"waveform"`
	// Period is the number of readings per cycle.
	Period int `yaml:"period"`
	// Values lists the value names to produce. temperature_c is 20±5,
	// humidity_pct 50±20, pressure_hpa 1013±5, level a 0/1 square wave
	// (0 with constant), anything else 0..100.
	Values []string `yaml:"values"`
	// FailEvery makes every Nth Read (N, 2N, ...) fail. 0 means never.
	FailEvery int `yaml:"fail_every"`
	// Delay is how long each Read takes; it honours the context, so a read
	// timeout can be exercised.
	Delay Duration `yaml:"delay"`
	// FailOpen makes the first N Opens with these options fail, like a
	// device missing at boot.
	FailOpen int `yaml:"fail_open"`
}

// DefaultSimOpts are the defaults NewOpts returns for sim.
var DefaultSimOpts = SimOpts{
	Waveform: "sine",
	Period:   60,
	Values:   []string{TemperatureC, HumidityPct},
}

var waveforms = []string{"sine", "sawtooth", "square", "constant"}

// Validate implements Validator.
func (o *SimOpts) Validate() error {
	switch {
	case o.Count < 0:
		return fmt.Errorf("count: %d is negative; use 0 for unlimited", o.Count)
	case !slices.Contains(waveforms, o.Waveform):
		return fmt.Errorf("waveform: %q is not valid; use sine, sawtooth, square or constant", o.Waveform)
	case o.Period < 2:
		return fmt.Errorf("period: %d is too short; use at least 2 readings per cycle", o.Period)
	case len(o.Values) == 0:
		return errors.New("values: empty; list at least one value name, or remove the key for temperature_c and humidity_pct")
	case o.FailEvery < 0:
		return fmt.Errorf("fail_every: %d is negative; use 0 for never", o.FailEvery)
	case o.Delay < 0:
		return fmt.Errorf("delay: %s is negative", o.Delay)
	case o.FailOpen < 0:
		return fmt.Errorf("fail_open: %d is negative; use 0 to open normally", o.FailOpen)
	}
	seen := map[string]bool{}
	for _, v := range o.Values {
		if !ValueName.MatchString(v) {
			return fmt.Errorf("values: %q is not a value name; use lowercase snake_case with a unit suffix, e.g. temperature_c", v)
		}
		if seen[v] {
			return fmt.Errorf("values: %q is listed twice", v)
		}
		seen[v] = true
	}
	return nil
}

func init() {
	Register(Driver{
		Name: "sim",
		Doc:  "simulated sensor with deterministic values (demo, tests): temperature_c, humidity_pct by default",
		NewOpts: func() any {
			o := DefaultSimOpts
			o.Values = append([]string(nil), o.Values...) // do not share the default's array
			return &o
		},
		Open: openSim,
	})
}

// simOpens counts Opens per options value for fail_open. It lives outside
// SimOpts so that the options stay a plain copyable struct.
var simOpens sync.Map // *SimOpts → *atomic.Int64

type simSensor struct {
	id     string // "demo: sim", prefix of every error
	o      SimOpts
	n      atomic.Int64 // index of the next reading
	closed atomic.Bool
}

var _ Sensor = (*simSensor)(nil)

func openSim(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, err := openOpts[SimOpts](env, "sim", opts)
	if err != nil {
		return nil, err
	}
	id := env.Name + ": sim"
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	c, _ := simOpens.LoadOrStore(o, new(atomic.Int64))
	if n := c.(*atomic.Int64).Add(1); n <= int64(o.FailOpen) {
		return nil, fmt.Errorf("%s: open: simulated failure %d of %d (fail_open)", id, n, o.FailOpen)
	}
	s := &simSensor{id: id, o: *o}
	s.o.Values = append([]string(nil), o.Values...)
	return s, nil
}

func (s *simSensor) Read(ctx context.Context) (Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	n := int(s.n.Add(1) - 1)
	if s.o.Count > 0 && n >= s.o.Count {
		return nil, fmt.Errorf("%s: %w (count %d)", s.id, ErrDone, s.o.Count)
	}
	if s.o.Delay > 0 {
		t := time.NewTimer(s.o.Delay.D())
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%s: read: %w", s.id, ctx.Err())
		}
	}
	if s.o.FailEvery > 0 && (n+1)%s.o.FailEvery == 0 {
		return nil, fmt.Errorf("%s: read: simulated failure at reading %d (fail_every %d)", s.id, n, s.o.FailEvery)
	}
	return SimValues(&s.o, n), nil
}

// SimValues returns reading n of a sim sensor with valid options o, for
// tests that want to predict what the agent publishes.
func SimValues(o *SimOpts, n int) Values {
	phase := float64(n%o.Period) / float64(o.Period)
	var w float64 // -1..1
	switch o.Waveform {
	case "sine":
		w = math.Sin(2 * math.Pi * phase)
	case "sawtooth":
		w = 2*phase - 1
	case "square":
		w = 1
		if phase >= 0.5 {
			w = -1
		}
	}
	v := make(Values, len(o.Values))
	for _, name := range o.Values {
		switch name {
		case TemperatureC:
			v[name] = round2(20 + 5*w)
		case HumidityPct:
			v[name] = round2(50 + 20*w)
		case PressureHPa:
			v[name] = round2(1013 + 5*w)
		case Level: // digital whatever the waveform
			if o.Waveform != "constant" && phase < 0.5 {
				v[name] = 1
			} else {
				v[name] = 0
			}
		default:
			v[name] = round2(50 + 50*w)
		}
	}
	return v
}

// Close makes further Reads fail. There is nothing to release.
func (s *simSensor) Close() error {
	s.closed.Store(true)
	return nil
}
