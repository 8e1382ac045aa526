package sensors

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// testEnv is an Env whose every field is a fake; tests override what they use.
func testEnv(t *testing.T) Env {
	t.Helper()
	return Env{
		Name:   "t",
		Logger: slog.New(slog.DiscardHandler),
		I2C: func(name string) (I2CBus, error) {
			t.Errorf("unexpected I2C(%q)", name)
			return nil, errors.New("no i2c in this test")
		},
		Pin: func(name string) (PinIn, error) {
			t.Errorf("unexpected Pin(%q)", name)
			return nil, errors.New("no gpio in this test")
		},
		SysFS: t.TempDir(),
	}
}

// open opens driver with opts through the registry, as the agent does.
func open(t *testing.T, env Env, driver string, opts any) (Sensor, error) {
	t.Helper()
	d, ok := Lookup(driver)
	if !ok {
		t.Fatalf("driver %q not registered", driver)
	}
	return d.Open(context.Background(), env, opts)
}

// wantErr fails unless err is non-nil and contains every substring.
func wantErr(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if err.Error() != "" && strings.ToLower(err.Error()[:1]) != err.Error()[:1] {
		t.Errorf("error %q does not start lowercase", err)
	}
}

func TestRegistry(t *testing.T) {
	want := []string{"aht20", "am2320", "bh1750", "bme280", "bmp180", "bmp280", "cpu_thermal", "ds18b20", "gpio", "gpio_counter",
		"hdc302x", "mcp9808", "sim", "tmp102"}
	got := Names()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("driver %s not registered (have %v)", w, got)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("Names() not sorted: %v", got)
	}
	defaults := map[string]any{
		"bme280":      &BMxx80Opts{Bus: "1", Address: 0x76, Oversampling: 4},
		"bmp280":      &BMxx80Opts{Bus: "1", Address: 0x76, Oversampling: 4},
		"cpu_thermal": &CPUThermalOpts{Zone: "thermal_zone0"},
		"ds18b20":     &DS18B20Opts{},
		"gpio":        &GPIOOpts{},
		"sim":         &SimOpts{Waveform: "sine", Period: 60, Values: []string{"temperature_c", "humidity_pct"}},
	}
	for _, d := range Drivers() {
		t.Run(d.Name, func(t *testing.T) {
			if d.Doc == "" {
				t.Error("empty Doc")
			}
			a, b := d.NewOpts(), d.NewOpts()
			if want, ok := defaults[d.Name]; ok && !reflect.DeepEqual(a, want) {
				t.Errorf("NewOpts() = %#v, want %#v", a, defaults[d.Name])
			}
			if reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer() {
				t.Error("NewOpts returned the same pointer twice")
			}
			if _, ok := a.(Validator); !ok {
				t.Error("options have no Validate method")
			}
			// Wrong options type is an error, not a panic.
			_, err := d.Open(context.Background(), testEnv(t), struct{}{})
			wantErr(t, err, "t: "+d.Name+": options are struct {}")
		})
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("Lookup(nope) found a driver")
	}
}

func TestRegistryDefaultsValid(t *testing.T) {
	for _, d := range Drivers() {
		// Defaults are valid, unless an option depends on the wiring
		// (a pin, a channel list): then the error says it is required.
		if err := d.NewOpts().(Validator).Validate(); err != nil &&
			!strings.Contains(err.Error(), "required") && !strings.Contains(err.Error(), "empty") {
			t.Errorf("%s: defaults invalid: %v", d.Name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Validator
		want string // "" means valid
	}{
		{"bmxx80 0x77", &BMxx80Opts{Bus: "1", Address: 0x77, Oversampling: 16}, ""},
		{"bmxx80 address", &BMxx80Opts{Bus: "1", Address: 0x42, Oversampling: 4}, "address: 0x42 is not a BME280/BMP280 address; use 0x76"},
		{"bmxx80 bus", &BMxx80Opts{Address: 0x76, Oversampling: 4}, "bus: empty"},
		{"bmxx80 oversampling", &BMxx80Opts{Bus: "1", Address: 0x76, Oversampling: 3}, "oversampling: 3 is not supported; use 1, 2, 4, 8 or 16"},
		{"ds18b20 id", &DS18B20Opts{ID: "28-0316a2795a2f"}, ""},
		{"ds18b20 bad id", &DS18B20Opts{ID: "28-0316A2795A2F"}, `id: "28-0316A2795A2F" is not a 1-wire ROM id`},
		{"ds18b20 path id", &DS18B20Opts{ID: "../28-0316a2795a2f"}, "is not a 1-wire ROM id"},
		{"gpio ok", &GPIOOpts{Pin: "GPIO17", Pull: "float"}, ""},
		{"gpio pin", &GPIOOpts{Pull: "up"}, `pin: required; set the GPIO line name, e.g. "GPIO17"`},
		{"gpio pull missing", &GPIOOpts{Pin: "GPIO17"}, "pull: required; set up, down or float"},
		{"gpio pull why", &GPIOOpts{Pin: "GPIO17"}, "silently enables the pull-up"},
		{"gpio pull bad", &GPIOOpts{Pin: "GPIO17", Pull: "high"}, `pull: "high" is not valid; use up, down or float`},
		{"cpu_thermal empty", &CPUThermalOpts{}, "zone: empty"},
		{"cpu_thermal path", &CPUThermalOpts{Zone: "../../etc"}, "not a path"},
		{"sim count", &SimOpts{Count: -1, Waveform: "sine", Period: 60, Values: []string{"x"}}, "count: -1 is negative"},
		{"sim waveform", &SimOpts{Waveform: "triangle", Period: 60, Values: []string{"x"}}, `waveform: "triangle" is not valid; use sine, sawtooth, square or constant`},
		{"sim period", &SimOpts{Waveform: "sine", Period: 1, Values: []string{"x"}}, "period: 1 is too short"},
		{"sim values empty", &SimOpts{Waveform: "sine", Period: 60}, "values: empty"},
		{"sim values dup", &SimOpts{Waveform: "sine", Period: 60, Values: []string{"x", "x"}}, `values: "x" is listed twice`},
		{"sim values name", &SimOpts{Waveform: "sine", Period: 60, Values: []string{"Temp C"}}, `values: "Temp C" is not a value name`},
		{"sim fail_every", &SimOpts{Waveform: "sine", Period: 60, Values: []string{"x"}, FailEvery: -2}, "fail_every: -2 is negative"},
		{"sim delay", &SimOpts{Waveform: "sine", Period: 60, Values: []string{"x"}, Delay: -1}, "delay: -1ns is negative"},
		{"sim fail_open", &SimOpts{Waveform: "sine", Period: 60, Values: []string{"x"}, FailOpen: -1}, "fail_open: -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tc.want)
		})
	}
}

// TestYAML decodes each driver's options the way the config loader does:
// strictly, over the defaults.
func TestYAML(t *testing.T) {
	for _, tc := range []struct {
		driver, doc string
		want        any
	}{
		{"bme280", "bus: /dev/i2c-3\naddress: 0x77\n", &BMxx80Opts{Bus: "/dev/i2c-3", Address: 0x77, Oversampling: 4}},
		{"bmp280", "oversampling: 16\n", &BMxx80Opts{Bus: "1", Address: 0x76, Oversampling: 16}},
		{"ds18b20", "id: 28-0316a2795a2f\n", &DS18B20Opts{ID: "28-0316a2795a2f"}},
		{"gpio", "pin: GPIO17\npull: up\ninvert: true\n", &GPIOOpts{Pin: "GPIO17", Pull: "up", Invert: true}},
		{"cpu_thermal", "zone: thermal_zone1\n", &CPUThermalOpts{Zone: "thermal_zone1"}},
		{"sim", "count: 3\nwaveform: square\nperiod: 4\nvalues: [level]\nfail_every: 2\ndelay: 50ms\nfail_open: 1\n",
			&SimOpts{Count: 3, Waveform: "square", Period: 4, Values: []string{"level"}, FailEvery: 2, Delay: Duration(50e6), FailOpen: 1}},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			d, _ := Lookup(tc.driver)
			got := d.NewOpts()
			dec := yaml.NewDecoder(strings.NewReader(tc.doc))
			dec.KnownFields(true)
			if err := dec.Decode(got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			if err := got.(Validator).Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestRound2CheckRange(t *testing.T) {
	if got := round2(1009.4269531); got != 1009.43 {
		t.Errorf("round2 = %v", got)
	}
	if err := checkRange("x", 85, -40, 85); err != nil {
		t.Error(err)
	}
	wantErr(t, checkRange("temperature_c", 85.01, -40, 85), "implausible temperature_c 85.01 (valid -40..85)")
}
