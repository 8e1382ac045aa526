package sensors

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func simOpts(mod func(*SimOpts)) *SimOpts {
	d, _ := Lookup("sim")
	o := d.NewOpts().(*SimOpts)
	if mod != nil {
		mod(o)
	}
	return o
}

// readN reads n values, failing the test on any error.
func readN(t *testing.T, s Sensor, n int) []Values {
	t.Helper()
	out := make([]Values, n)
	for i := range out {
		v, err := s.Read(context.Background())
		if err != nil {
			t.Fatalf("reading %d: %v", i, err)
		}
		out[i] = v
	}
	return out
}

func TestSimWaveforms(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts *SimOpts
		want []Values
	}{
		{"sine default", simOpts(nil), nil}, // checked at chosen indexes below
		{"sawtooth", simOpts(func(o *SimOpts) { o.Waveform, o.Period = "sawtooth", 4 }), []Values{
			{TemperatureC: 15, HumidityPct: 30}, {TemperatureC: 17.5, HumidityPct: 40},
			{TemperatureC: 20, HumidityPct: 50}, {TemperatureC: 22.5, HumidityPct: 60},
			{TemperatureC: 15, HumidityPct: 30},
		}},
		{"square", simOpts(func(o *SimOpts) { o.Waveform, o.Period = "square", 4 }), []Values{
			{TemperatureC: 25, HumidityPct: 70}, {TemperatureC: 25, HumidityPct: 70},
			{TemperatureC: 15, HumidityPct: 30}, {TemperatureC: 15, HumidityPct: 30},
			{TemperatureC: 25, HumidityPct: 70},
		}},
		{"constant", simOpts(func(o *SimOpts) { o.Waveform = "constant" }), []Values{
			{TemperatureC: 20, HumidityPct: 50}, {TemperatureC: 20, HumidityPct: 50},
		}},
		{"other names, sine period 4", simOpts(func(o *SimOpts) {
			o.Period, o.Values = 4, []string{PressureHPa, Level, "soil_moisture_pct"}
		}), []Values{
			{PressureHPa: 1013, Level: 1, "soil_moisture_pct": 50},
			{PressureHPa: 1018, Level: 1, "soil_moisture_pct": 100},
			{PressureHPa: 1013, Level: 0, "soil_moisture_pct": 50},
			{PressureHPa: 1008, Level: 0, "soil_moisture_pct": 0},
		}},
		{"level constant", simOpts(func(o *SimOpts) { o.Waveform, o.Values = "constant", []string{Level} }), []Values{
			{Level: 0}, {Level: 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := open(t, testEnv(t), "sim", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if tc.want == nil {
				got := readN(t, s, 61)
				for n, want := range map[int]Values{
					0:  {TemperatureC: 20, HumidityPct: 50},
					10: {TemperatureC: 24.33, HumidityPct: 67.32}, // sin(π/3), rounded to 2 decimals
					15: {TemperatureC: 25, HumidityPct: 70},
					30: {TemperatureC: 20, HumidityPct: 50},
					45: {TemperatureC: 15, HumidityPct: 30},
					60: {TemperatureC: 20, HumidityPct: 50},
				} {
					if !reflect.DeepEqual(got[n], want) {
						t.Errorf("reading %d = %v, want %v", n, got[n], want)
					}
				}
				return
			}
			if got := readN(t, s, len(tc.want)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

// TestSimDeterministic: two sensors, same options, same sequence, and it
// matches SimValues.
func TestSimDeterministic(t *testing.T) {
	o := simOpts(func(o *SimOpts) { o.Period = 7 })
	a, err := open(t, testEnv(t), "sim", o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := open(t, testEnv(t), "sim", o)
	if err != nil {
		t.Fatal(err)
	}
	va, vb := readN(t, a, 20), readN(t, b, 20)
	if !reflect.DeepEqual(va, vb) {
		t.Fatalf("sequences differ:\n%v\n%v", va, vb)
	}
	for n, v := range va {
		if !reflect.DeepEqual(v, SimValues(o, n)) {
			t.Errorf("reading %d = %v, SimValues says %v", n, v, SimValues(o, n))
		}
	}
	// Values are fresh maps: a caller mutating one does not change the next.
	va[0][TemperatureC] = -1
	if SimValues(o, 0)[TemperatureC] != 20 {
		t.Error("SimValues shares its map")
	}
}

func TestSimCountAndFailEvery(t *testing.T) {
	s, err := open(t, testEnv(t), "sim", simOpts(func(o *SimOpts) { o.Count, o.FailEvery, o.Period = 7, 3, 4 }))
	if err != nil {
		t.Fatal(err)
	}
	o := simOpts(func(o *SimOpts) { o.Period = 4 })
	for n := range 10 {
		v, err := s.Read(context.Background())
		switch {
		case n >= 7:
			if !errors.Is(err, ErrDone) {
				t.Fatalf("reading %d: got %v, %v; want ErrDone", n, v, err)
			}
			wantErr(t, err, "t: sim: no more readings (count 7)")
		case n == 2 || n == 5:
			wantErr(t, err, "t: sim: read: simulated failure at reading ", "(fail_every 3)")
			if errors.Is(err, ErrDone) {
				t.Error("failure is ErrDone")
			}
		default:
			if err != nil || !reflect.DeepEqual(v, SimValues(o, n)) {
				t.Fatalf("reading %d: got %v, %v; want %v", n, v, err, SimValues(o, n))
			}
		}
	}
}

func TestSimDelay(t *testing.T) {
	s, err := open(t, testEnv(t), "sim", simOpts(func(o *SimOpts) { o.Delay = Duration(time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	// The Read must give up when the context does, long before the delay.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = s.Read(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	wantErr(t, err, "t: sim: read: context deadline exceeded")

	s, err = open(t, testEnv(t), "sim", simOpts(func(o *SimOpts) { o.Delay = Duration(time.Millisecond) }))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	readN(t, s, 2)
	if d := time.Since(start); d < 2*time.Millisecond {
		t.Errorf("2 reads with 1ms delay took %s", d)
	}
}

func TestSimFailOpen(t *testing.T) {
	o := simOpts(func(o *SimOpts) { o.FailOpen = 2 })
	for i := 1; i <= 2; i++ {
		s, err := open(t, testEnv(t), "sim", o)
		if s != nil {
			t.Error("got a sensor with an error")
		}
		wantErr(t, err, "t: sim: open: simulated failure ")
	}
	for range 2 {
		s, err := open(t, testEnv(t), "sim", o)
		if err != nil {
			t.Fatal(err)
		}
		readN(t, s, 1)
	}
	// Another options value (another configured sensor) counts on its own.
	if _, err := open(t, testEnv(t), "sim", simOpts(func(o *SimOpts) { o.FailOpen = 1 })); err == nil {
		t.Error("fresh options did not fail their first open")
	}
}

func TestSimClosedCancelled(t *testing.T) {
	s, err := open(t, testEnv(t), "sim", simOpts(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	d, _ := Lookup("sim")
	if _, err := d.Open(ctx, testEnv(t), simOpts(nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled ctx: got %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(context.Background())
	wantErr(t, err, "t: sim: read: sensor is closed")
}

// TestSimOptsNotShared: editing options after Open does not change the
// sensor, and NewOpts copies do not share the default values list.
func TestSimOptsNotShared(t *testing.T) {
	o := simOpts(nil)
	s, err := open(t, testEnv(t), "sim", o)
	if err != nil {
		t.Fatal(err)
	}
	o.Values[0] = "changed"
	if v := readN(t, s, 1)[0]; v[TemperatureC] != 20 {
		t.Errorf("got %v", v)
	}
	if DefaultSimOpts.Values[0] != TemperatureC || simOpts(nil).Values[0] != TemperatureC {
		t.Error("NewOpts shares the default Values slice")
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want Duration
		err  string
	}{
		{"d: 50ms", Duration(50 * time.Millisecond), ""},
		{"d: 1m30s", Duration(90 * time.Second), ""},
		{"d: 0", 0, ""},
		{`d: "2s"`, Duration(2 * time.Second), ""},
		{"d: 50", 0, `"50" has no unit: write e.g. 50s or 50ms`},
		{"d: soon", 0, `invalid duration "soon"`},
		{"d: [1]", 0, "want a duration"},
	} {
		var got struct {
			D Duration `yaml:"d"`
		}
		err := yaml.Unmarshal([]byte(tc.doc), &got)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want error containing %q", tc.doc, err, tc.err)
			}
			continue
		}
		if err != nil || got.D != tc.want {
			t.Errorf("%q: got %v, %v; want %v", tc.doc, got.D, err, tc.want)
		}
	}
	b, err := yaml.Marshal(struct{ D Duration }{Duration(50 * time.Millisecond)})
	if err != nil || string(b) != "d: 50ms\n" {
		t.Errorf("Marshal = %q, %v", b, err)
	}
}

func BenchmarkSimRead(b *testing.B) {
	d, _ := Lookup("sim")
	s, err := d.Open(context.Background(), Env{Name: "bench"}, d.NewOpts())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
