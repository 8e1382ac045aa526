package sensors

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// AHT20 datasheet: measure command 0xac 0x33 0x00, then 7 bytes: status,
// 20 bits of humidity, 20 bits of temperature, CRC-8 (0x31, init 0xff).
// RH = Srh / 2^20 * 100 %, T = St / 2^20 * 200 - 50 °C.
var (
	aht20Status    = i2ctest.IO{Addr: 0x38, W: []byte{0x71}, R: []byte{0x18}} // calibrated (bit 3)
	aht20StatusCal = i2ctest.IO{Addr: 0x38, W: []byte{0x71}, R: []byte{0x10}} // not calibrated
	aht20Calibrate = i2ctest.IO{Addr: 0x38, W: []byte{0xbe, 0x08, 0x00}}
	aht20Measure   = i2ctest.IO{Addr: 0x38, W: []byte{0xac, 0x33, 0x00}}
)

// aht20Frame is a measurement answer with its CRC.
func aht20Frame(status byte, srh, st uint32) i2ctest.IO {
	b := []byte{status, byte(srh >> 12), byte(srh >> 4), byte(srh&0xf<<4 | st>>16&0xf), byte(st >> 8), byte(st)}
	return i2ctest.IO{Addr: 0x38, R: append(b, i2cCRC8(b))}
}

// i2cCRC8 is the CRC-8 of the AHT20 and HDC302x datasheets (polynomial
// 0x31, init 0xff, no reflection), the same as Sensirion's: TestI2CCRC8
// checks it against the datasheets' examples.
var i2cCRC8 = sensirionCRC8

func TestI2CCRC8(t *testing.T) {
	// The worked example of the HDC302x (and Sensirion) datasheets: 0xbeef → 0x92.
	if got := i2cCRC8([]byte{0xbe, 0xef}); got != 0x92 {
		t.Fatalf("crc8(beef) = %#x, want 0x92", got)
	}
	// periph's recorded AHT20 frame carries 0x7f.
	if got := i2cCRC8([]byte{0x18, 0x75, 0x52, 0x05, 0x8e, 0x40}); got != 0x7f {
		t.Fatalf("crc8 = %#x, want 0x7f", got)
	}
}

func TestAHT20Read(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []i2ctest.IO
		want Values
	}{
		// St = 0x60000 = 393216: 393216/2^20*200-50 = 25 °C.
		// Srh = 0x66666 = 419430: 419430/2^20*100 = 39.99996 %.
		{"25 °C 40 %", []i2ctest.IO{aht20Status, aht20Measure, aht20Frame(0x18, 0x66666, 0x60000)}, Values{TemperatureC: 25, HumidityPct: 40}},
		// St = 0x33333 = 209715: -10.00004 °C. Srh = 0xfffff: 99.9999 %.
		{"-10 °C 100 %", []i2ctest.IO{aht20Status, aht20Measure, aht20Frame(0x18, 0xfffff, 0x33333)}, Values{TemperatureC: -10, HumidityPct: 100}},
		// periph's recorded frame (aht20_test.go): Srh = 0x75520 = 480544
		// → 45.828 %, St = 0x58e40 = 364096 → 19.4458 °C.
		{"periph frame", []i2ctest.IO{aht20Status, aht20Measure, {Addr: 0x38, R: []byte{0x18, 0x75, 0x52, 0x05, 0x8e, 0x40, 0x7f}}}, Values{TemperatureC: 19.45, HumidityPct: 45.83}},
		// Not calibrated at open: the calibration command is sent.
		{"calibrate at open", []i2ctest.IO{aht20StatusCal, aht20Calibrate, aht20Measure, aht20Frame(0x18, 0x80000, 0x60000)}, Values{TemperatureC: 25, HumidityPct: 50}},
		// Busy (bit 7) on the first poll: periph polls again.
		{"busy then ready", []i2ctest.IO{aht20Status, aht20Measure, aht20Frame(0x98, 0, 0), aht20Frame(0x18, 0x80000, 0x60000)}, Values{TemperatureC: 25, HumidityPct: 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tc.ops}
			s, err := open(t, i2cEnv(t, bus), "aht20", &AHT20Opts{Bus: "1", Address: 0x38})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if err := bus.Close(); err != nil { // all ops consumed
				t.Fatal(err)
			}
			_, err = s.Read(context.Background())
			wantErr(t, err, "t: aht20 /dev/i2c-1 0x38: read: sensor is closed")
		})
	}
}

func TestAHT20BadReadings(t *testing.T) {
	good := aht20Frame(0x18, 0x80000, 0x60000)
	corrupt := i2ctest.IO{Addr: 0x38, R: slices.Clone(good.R)}
	corrupt.R[6] ^= 0xff
	for _, tc := range []struct {
		name  string
		frame i2ctest.IO
		want  string
	}{
		// An all-zero frame decodes to -50 °C, the formula's floor.
		{"all zero", aht20Frame(0x18, 0, 0), "t: aht20 /dev/i2c-1 0x38: read: implausible temperature_c -50 (valid -40..85)"},
		// St = 0xfffff: 149.9998 °C.
		{"hot", aht20Frame(0x18, 0x80000, 0xfffff), "implausible temperature_c 150 (valid -40..85)"},
		{"crc", corrupt, "t: aht20 /dev/i2c-1 0x38: read: Data is corrupt. The CRC8 hashes did not match"},
		{"lost calibration", aht20Frame(0x10, 0x80000, 0x60000), "t: aht20 /dev/i2c-1 0x38: read: AHT20 is not initialized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: []i2ctest.IO{aht20Status, aht20Measure, tc.frame}}
			s, err := open(t, i2cEnv(t, bus), "aht20", &AHT20Opts{Bus: "1", Address: 0x38})
			if err != nil {
				t.Fatal(err)
			}
			v, err := s.Read(context.Background())
			if v != nil {
				t.Errorf("got values %v with the error", v)
			}
			wantErr(t, err, tc.want)
			if err := bus.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAHT20BusFault(t *testing.T) {
	i2cFaultEach(t, "aht20", &AHT20Opts{Bus: "1", Address: 0x38}, i2cPhases{
		open: []i2ctest.IO{aht20Status},
		read: []i2ctest.IO{aht20Measure, aht20Frame(0x18, 0x80000, 0x60000)},
	}, nil, []string{
		"t: aht20 /dev/i2c-1 0x38: open: no device answered; check the wiring and the address (i2cdetect -y 1): read status: sysfs-i2c: remote I/O error",
		"t: aht20 /dev/i2c-1 0x38: read: sysfs-i2c: remote I/O error",
		"t: aht20 /dev/i2c-1 0x38: read: sysfs-i2c: remote I/O error",
	})
	// Calibration write failing.
	bus := &faultBus{Playback: &i2ctest.Playback{Ops: []i2ctest.IO{aht20StatusCal}}, failAt: 2}
	_, err := open(t, i2cEnv(t, bus), "aht20", &AHT20Opts{Bus: "1", Address: 0x38})
	wantErr(t, err, "t: aht20 /dev/i2c-1 0x38: open: no device answered; check the wiring and the address (i2cdetect -y 1): calibrate: sysfs-i2c: remote I/O error")
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAHT20Cancelled(t *testing.T) {
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{aht20Status}} // any read I/O would panic
	s, err := open(t, i2cEnv(t, bus), "aht20", &AHT20Opts{Bus: "1", Address: 0x38})
	if err != nil {
		t.Fatal(err)
	}
	i2cReadCancelled(t, s, "t: aht20 /dev/i2c-1 0x38: read: context canceled")
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

// i2cReadCancelled checks that Read with a cancelled context fails without
// touching the bus (a Playback without ops panics on any Tx).
func i2cReadCancelled(t *testing.T, s Sensor, want string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Read(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	wantErr(t, err, want)
}

// i2cPhases is a driver's transcript split by what runs it: Open, one
// Read, Close.
type i2cPhases struct{ open, read, close []i2ctest.IO }

// i2cFaultEach opens, reads once and closes driver over a bus that fails
// transaction number N instead of passing it on, for every N of the
// transcript. want[N-1] is the error expected from the phase holding
// transaction N; after an error the driver must do no more I/O in that
// phase (the Playback holds only the ops before it, plus Close's after a
// failed Read). An empty want[N-1] skips N (a fault the driver tolerates,
// tested separately). prep, if set, runs after Open (to skip settling
// waits).
func i2cFaultEach(t *testing.T, driver string, opts any, ph i2cPhases, prep func(Sensor), want []string) {
	t.Helper()
	all := slices.Concat(ph.open, ph.read, ph.close)
	if len(want) != len(all) {
		t.Fatalf("%d expected errors for %d transactions", len(want), len(all))
	}
	for i := range all {
		if want[i] == "" {
			continue
		}
		t.Run(fmt.Sprintf("Tx%d", i+1), func(t *testing.T) {
			inOpen := i < len(ph.open)
			inRead := !inOpen && i < len(ph.open)+len(ph.read)
			ops := slices.Clone(all[:i])
			if inRead {
				ops = append(ops, ph.close...)
			}
			bus := &faultBus{Playback: &i2ctest.Playback{Ops: ops}, failAt: i + 1}
			s, err := open(t, i2cEnv(t, bus), driver, opts)
			if inOpen {
				if s != nil {
					t.Error("got a sensor with the error")
				}
				wantErr(t, err, want[i])
			} else {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				if prep != nil {
					prep(s)
				}
				v, err := s.Read(context.Background())
				if inRead {
					if v != nil {
						t.Errorf("got values %v with the error", v)
					}
					wantErr(t, err, want[i])
				} else if err != nil {
					t.Fatalf("read: %v", err)
				}
				err = s.Close()
				if inRead {
					if err != nil {
						t.Errorf("close after a failed read: %v", err)
					}
				} else {
					wantErr(t, err, want[i])
					if _, err := s.Read(context.Background()); err == nil || !strings.Contains(err.Error(), "sensor is closed") {
						t.Errorf("read after a failed close: %v, want sensor is closed", err)
					}
				}
			}
			if err := bus.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestI2CDrivers checks the registration of the aht20, am2320, hdc302x,
// mcp9808, tmp102 and bh1750 drivers: defaults, YAML keys, limits.
func TestI2CDrivers(t *testing.T) {
	for _, tc := range []struct {
		driver   string
		defaults any
		doc      string // every key, decoded strictly over the defaults
		decoded  any
		limits   map[string]Range
	}{
		{"aht20", &AHT20Opts{Bus: "1", Address: 0x38},
			"bus: /dev/i2c-3\naddress: 0x38\n", &AHT20Opts{Bus: "/dev/i2c-3", Address: 0x38},
			map[string]Range{TemperatureC: {-40, 85}, HumidityPct: {0, 100}}},
		{"am2320", &AM2320Opts{Bus: "1", Address: 0x5c},
			"bus: I2C1\naddress: 0x5c\n", &AM2320Opts{Bus: "I2C1", Address: 0x5c},
			map[string]Range{TemperatureC: {-40, 80}, HumidityPct: {0, 100}}},
		{"hdc302x", &HDC302xOpts{Bus: "1", Address: 0x44, SampleRate: 1},
			"bus: \"1\"\naddress: 0x47\nsample_rate: 0.5\n", &HDC302xOpts{Bus: "1", Address: 0x47, SampleRate: 0.5},
			map[string]Range{TemperatureC: {-40, 125}, HumidityPct: {0, 100}}},
		{"mcp9808", &MCP9808Opts{Bus: "1", Address: 0x18},
			"address: 0x1f\n", &MCP9808Opts{Bus: "1", Address: 0x1f},
			map[string]Range{TemperatureC: {-40, 125}}},
		{"tmp102", &TMP102Opts{Bus: "1", Address: 0x48},
			"address: 0x4b\n", &TMP102Opts{Bus: "1", Address: 0x4b},
			map[string]Range{TemperatureC: {-40, 125}}},
		{"bh1750", &BH1750Opts{Bus: "1", Address: 0x23, Mode: "high"},
			"address: 0x5c\nmode: high2\n", &BH1750Opts{Bus: "1", Address: 0x5c, Mode: "high2"},
			map[string]Range{"illuminance_lux": {0, 65535}}},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			d, ok := Lookup(tc.driver)
			if !ok {
				t.Fatal("not registered")
			}
			if d.Doc == "" {
				t.Error("empty Doc")
			}
			if !reflect.DeepEqual(d.Limits, tc.limits) {
				t.Errorf("Limits = %v, want %v", d.Limits, tc.limits)
			}
			a, b := d.NewOpts(), d.NewOpts()
			if !reflect.DeepEqual(a, tc.defaults) {
				t.Errorf("NewOpts() = %#v, want %#v", a, tc.defaults)
			}
			if reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer() {
				t.Error("NewOpts returned the same pointer twice")
			}
			if err := a.(Validator).Validate(); err != nil {
				t.Errorf("defaults invalid: %v", err)
			}
			dec := yaml.NewDecoder(strings.NewReader(tc.doc))
			dec.KnownFields(true)
			if err := dec.Decode(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(b, tc.decoded) {
				t.Errorf("decoded %#v, want %#v", b, tc.decoded)
			}
			if err := b.(Validator).Validate(); err != nil {
				t.Error(err)
			}
			// Wrong options type is an error, not a panic.
			_, err := d.Open(context.Background(), testEnv(t), struct{}{})
			wantErr(t, err, "t: "+tc.driver+": options are struct {}")
		})
	}
}

// TestI2CDriversValidate covers every option error of the six drivers.
// Open validates too, before touching the bus (testEnv's I2C fails the
// test if called).
func TestI2CDriversValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		driver string
		opts   Validator
		want   string // "" means valid
	}{
		{"aht20 bus", "aht20", &AHT20Opts{Address: 0x38}, "bus: empty"},
		{"aht20 address", "aht20", &AHT20Opts{Bus: "1", Address: 0x39}, "address: 0x39 is not possible; the AHT20's address is fixed at 0x38"},
		{"am2320 bus", "am2320", &AM2320Opts{Address: 0x5c}, "bus: empty"},
		{"am2320 datasheet address", "am2320", &AM2320Opts{Bus: "1", Address: 0xb8}, "address: 0xb8 is not possible; the AM2320's address is fixed at 0x5c (the datasheet's 0xb8 is 0x5c shifted left"},
		{"hdc302x 0x45", "hdc302x", &HDC302xOpts{Bus: "1", Address: 0x45, SampleRate: 10}, ""},
		{"hdc302x bus", "hdc302x", &HDC302xOpts{Address: 0x44, SampleRate: 1}, "bus: empty"},
		{"hdc302x address", "hdc302x", &HDC302xOpts{Bus: "1", Address: 0x40, SampleRate: 1}, "address: 0x40 is not an HDC302x address; use 0x44..0x47"},
		{"hdc302x address high", "hdc302x", &HDC302xOpts{Bus: "1", Address: 0x48, SampleRate: 1}, "address: 0x48 is not an HDC302x address"},
		{"hdc302x rate", "hdc302x", &HDC302xOpts{Bus: "1", Address: 0x44, SampleRate: 3}, "sample_rate: 3 Hz is not supported; use 0.5, 1, 2, 4 or 10"},
		{"hdc302x rate zero", "hdc302x", &HDC302xOpts{Bus: "1", Address: 0x44}, "sample_rate: 0 Hz is not supported"},
		{"hdc302x rate index", "hdc302x", &HDC302xOpts{Bus: "1", Address: 0x44, SampleRate: 5}, "sample_rate: 5 Hz"},
		{"mcp9808 0x1a", "mcp9808", &MCP9808Opts{Bus: "1", Address: 0x1a}, ""},
		{"mcp9808 bus", "mcp9808", &MCP9808Opts{Address: 0x18}, "bus: empty"},
		{"mcp9808 address", "mcp9808", &MCP9808Opts{Bus: "1", Address: 0x20}, "address: 0x20 is not an MCP9808 address; use 0x18..0x1f"},
		{"mcp9808 address low", "mcp9808", &MCP9808Opts{Bus: "1", Address: 0x17}, "address: 0x17 is not an MCP9808 address"},
		{"tmp102 0x4a", "tmp102", &TMP102Opts{Bus: "1", Address: 0x4a}, ""},
		{"tmp102 bus", "tmp102", &TMP102Opts{Address: 0x48}, "bus: empty"},
		{"tmp102 address", "tmp102", &TMP102Opts{Bus: "1", Address: 0x4c}, "address: 0x4c is not a TMP102 address; use 0x48..0x4b"},
		{"bh1750 low", "bh1750", &BH1750Opts{Bus: "1", Address: 0x5c, Mode: "low"}, ""},
		{"bh1750 bus", "bh1750", &BH1750Opts{Address: 0x23, Mode: "high"}, "bus: empty"},
		{"bh1750 address", "bh1750", &BH1750Opts{Bus: "1", Address: 0x24, Mode: "high"}, "address: 0x24 is not a BH1750 address; use 0x23 (ADDR low) or 0x5c (ADDR high)"},
		{"bh1750 mode", "bh1750", &BH1750Opts{Bus: "1", Address: 0x23, Mode: "onetime"}, `mode: "onetime" is not valid; use high (1 lx), high2 (0.5 lx) or low (4 lx)`},
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
			_, err = open(t, testEnv(t), tc.driver, tc.opts)
			wantErr(t, err, "t: "+tc.driver+": "+tc.want)
		})
	}
}

// TestI2CDriversBusOpenError: a bus that cannot be opened is an open error
// naming the sensor.
func TestI2CDriversBusOpenError(t *testing.T) {
	for driver, want := range map[string]string{
		"aht20":   "t: aht20 /dev/i2c-1 0x38: open: ",
		"am2320":  "t: am2320 /dev/i2c-1 0x5c: open: ",
		"hdc302x": "t: hdc302x /dev/i2c-1 0x44: open: ",
		"mcp9808": "t: mcp9808 /dev/i2c-1 0x18: open: ",
		"tmp102":  "t: tmp102 /dev/i2c-1 0x48: open: ",
		"bh1750":  "t: bh1750 /dev/i2c-1 0x23: open: ",
	} {
		t.Run(driver, func(t *testing.T) {
			env := testEnv(t)
			env.I2C = func(string) (I2CBus, error) { return nil, errors.New(`open i2c bus "1": i2creg: no bus found`) }
			d, _ := Lookup(driver)
			s, err := d.Open(context.Background(), env, d.NewOpts())
			if s != nil {
				t.Error("got a sensor with the error")
			}
			wantErr(t, err, want+`open i2c bus "1": i2creg: no bus found`)
			// A cancelled context stops Open before the bus is touched.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err = d.Open(ctx, testEnv(t), d.NewOpts())
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled open: %v", err)
			}
			wantErr(t, err, want+"context canceled")
		})
	}
}
