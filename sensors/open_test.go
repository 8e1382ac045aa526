package sensors

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// valuesDriver is a test driver whose sensor returns fixed values.
func valuesDriver(v Values, limits map[string]Range) Driver {
	return Driver{Name: "fixed", NewOpts: func() any { return &struct{}{} }, Limits: limits,
		Open: func(context.Context, Env, any) (Sensor, error) { return fixedSensor(v), nil }}
}

type fixedSensor Values

func (f fixedSensor) Read(context.Context) (Values, error) {
	out := Values{}
	for k, v := range f {
		out[k] = v
	}
	return out, nil
}
func (fixedSensor) Close() error { return nil }

func f64(v float64) *float64 { return &v }

func TestLimitsAndCalibration(t *testing.T) {
	driverLimits := map[string]Range{TemperatureC: {-40, 85}, HumidityPct: {0, 100}}
	tests := []struct {
		name   string
		v      Values
		common Common
		want   Values
		err    string
	}{
		{"in range", Values{TemperatureC: 21.5, HumidityPct: 40}, Common{}, Values{TemperatureC: 21.5, HumidityPct: 40}, ""},
		{"zero kelvin", Values{TemperatureC: -273.15}, Common{}, nil, "temperature_c = -273.15 is outside the plausible range -40..85"},
		{"am2320 sign bug", Values{TemperatureC: -3266.7}, Common{}, nil, "outside the plausible range"},
		{"humidity over 100", Values{HumidityPct: 100.5}, Common{}, nil, "humidity_pct = 100.5"},
		{"NaN", Values{TemperatureC: math.NaN()}, Common{}, nil, "temperature_c is NaN"},
		{"user narrows", Values{TemperatureC: 70}, Common{Limits: map[string]Range{TemperatureC: {-10, 60}}}, nil, "-10..60"},
		{"user limit on another value", Values{"co2_ppm": 90000}, Common{Limits: map[string]Range{"co2_ppm": {0, 40000}}}, nil, "co2_ppm = 90000"},
		{"offset and scale", Values{TemperatureC: 20, HumidityPct: 50},
			Common{Calibrate: map[string]Calibration{TemperatureC: {Offset: -0.5, Scale: f64(1.1)}}},
			Values{TemperatureC: 21.5, HumidityPct: 50}, ""},
		{"rename", Values{TemperatureC: 20}, Common{Calibrate: map[string]Calibration{TemperatureC: {Rename: "soil_temperature_c"}}},
			Values{"soil_temperature_c": 20}, ""},
		{"limits before calibration", Values{TemperatureC: 84}, Common{Calibrate: map[string]Calibration{TemperatureC: {Offset: 10}}},
			Values{TemperatureC: 94}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), valuesDriver(tt.v, driverLimits), testEnv(t), nil, tt.common)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Read(context.Background())
			if tt.err != "" {
				wantErr(t, err, tt.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, w := range tt.want {
				if math.Abs(got[k]-w) > 1e-9 {
					t.Errorf("%s = %v, want %v", k, got[k], w)
				}
			}
		})
	}
}

// busDriver opens bus "1" and reads by blocking until released.
type blockingSensor struct {
	started chan string
	release chan struct{}
	name    string
}

func (b *blockingSensor) Read(context.Context) (Values, error) {
	b.started <- b.name
	<-b.release
	return Values{"v": 1}, nil
}
func (b *blockingSensor) Close() error { return nil }

func TestSensorsOnOneBusDoNotInterleave(t *testing.T) {
	started := make(chan string, 4)
	release := make(chan struct{})
	drv := func(name string) Driver {
		return Driver{Name: name, NewOpts: func() any { return &struct{}{} },
			Open: func(_ context.Context, env Env, _ any) (Sensor, error) {
				if _, err := env.I2C("1"); err != nil {
					return nil, err
				}
				return &blockingSensor{started: started, release: release, name: name}, nil
			}}
	}
	env := testEnv(t)
	env.I2C = func(string) (I2CBus, error) { return &i2ctest.Playback{}, nil }
	a, err := Open(context.Background(), drv("a"), env, nil, Common{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(context.Background(), drv("b"), env, nil, Common{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { a.Read(context.Background()) })
	first := <-started
	wg.Go(func() { b.Read(context.Background()) })
	select {
	case second := <-started:
		t.Fatalf("%s started reading while %s held the bus", second, first)
	case <-time.After(50 * time.Millisecond):
		// Bounded wait for something that must NOT happen.
	}
	release <- struct{}{}
	<-started // the other one may go now
	release <- struct{}{}
	wg.Wait()
}

func TestMuxSelectsChannelBeforeEveryTransaction(t *testing.T) {
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x70, R: []byte{0x00}},                     // pca9548.New probes the mux
		{Addr: 0x70, W: []byte{1 << 3}},                   // select channel 3
		{Addr: 0x76, W: []byte{0xd0}, R: []byte{0x60}},    // the device behind it
		{Addr: 0x70, W: []byte{1 << 3}},                   // again for the next one
		{Addr: 0x76, W: []byte{0xf7}, R: []byte{1, 2, 3}}, //
	}}
	env := testEnv(t)
	env.I2C = func(string) (I2CBus, error) { return bus, nil }
	drv := Driver{Name: "muxed", NewOpts: func() any { return &struct{}{} },
		Open: func(_ context.Context, env Env, _ any) (Sensor, error) {
			b, err := env.I2C("7")
			if err != nil {
				return nil, err
			}
			id := make([]byte, 1)
			if err := b.Tx(0x76, []byte{0xd0}, id); err != nil || id[0] != 0x60 {
				return nil, errors.New("chip id through the mux failed")
			}
			data := make([]byte, 3)
			if err := b.Tx(0x76, []byte{0xf7}, data); err != nil {
				return nil, err
			}
			return fixedSensor{"v": float64(data[2])}, nil
		}}
	if _, err := Open(context.Background(), drv, env, nil, Common{Mux: &Mux{Address: 0x70, Channel: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMuxValidate(t *testing.T) {
	for _, m := range []Mux{{0x69, 0}, {0x78, 0}, {0x70, 8}, {0x70, -1}} {
		if err := m.Validate(); err == nil {
			t.Errorf("%+v: no error", m)
		}
	}
	if err := (&Mux{0x77, 7}).Validate(); err != nil {
		t.Error(err)
	}
}
