package sensors

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
)

// BME280 transcript from periph's own test, devices/bmxx80/bmx280_test.go
// (periph.io/x/devices/v3 v3.7.4):
// 23.72 °C, 1009.43 hPa, 65.3 %RH with oversampling 4.
var (
	bme280ID    = i2ctest.IO{Addr: 0x76, W: []byte{0xd0}, R: []byte{0x60}}
	bme280CalTP = i2ctest.IO{Addr: 0x76, W: []byte{0x88}, R: []byte{0x10, 0x6e, 0x6c, 0x66, 0x32, 0x0, 0x5d, 0x95, 0xb8, 0xd5, 0xd0, 0xb, 0x77, 0x1e, 0x9d, 0xff, 0xf9, 0xff, 0xac, 0x26, 0xa, 0xd8, 0xbd, 0x10, 0x0, 0x4b}}
	bme280CalH  = i2ctest.IO{Addr: 0x76, W: []byte{0xe1}, R: []byte{0x6e, 0x1, 0x0, 0x13, 0x5, 0x0, 0x1e}}
	bme280Cfg4x = i2ctest.IO{Addr: 0x76, W: []byte{0xf4, 0x6c, 0xf2, 0x3, 0xf5, 0xa0, 0xf4, 0x6c}}
	forced4x    = i2ctest.IO{Addr: 0x76, W: []byte{0xf4, 0x6d}}
	statusBusy  = i2ctest.IO{Addr: 0x76, W: []byte{0xf3}, R: []byte{8}}
	statusIdle  = i2ctest.IO{Addr: 0x76, W: []byte{0xf3}, R: []byte{0}}
	bme280Data  = i2ctest.IO{Addr: 0x76, W: []byte{0xf7}, R: []byte{0x4a, 0x52, 0xc0, 0x80, 0x96, 0xc0, 0x7a, 0x76}}
)

func bme280Ops() []i2ctest.IO {
	return []i2ctest.IO{bme280ID, bme280CalTP, bme280CalH, bme280Cfg4x, forced4x, statusBusy, statusIdle, bme280Data}
}

// bmp280Bosch is the compensation example of the Bosch BMP280 datasheet
// (section 3.12 / 8.2): 25.08 °C, 100653.27 Pa.
func bmp280Bosch() []i2ctest.IO {
	cal := make([]byte, 0, 26)
	for _, v := range []int{27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000} {
		cal = binary.LittleEndian.AppendUint16(cal, uint16(int16(v)))
	}
	cal = append(cal, 0, 0) // 0xa0 reserved, 0xa1 dig_H1 (BME280 only)
	const adcP, adcT = 415148, 519888
	data := []byte{adcP >> 12, adcP >> 4 & 0xff, adcP & 0xf << 4, adcT >> 12, adcT >> 4 & 0xff, adcT & 0xf << 4}
	return []i2ctest.IO{
		{Addr: 0x76, W: []byte{0xd0}, R: []byte{0x58}},
		{Addr: 0x76, W: []byte{0x88}, R: cal},
		{Addr: 0x76, W: []byte{0xf4, 0x6c, 0xf5, 0xa0, 0xf4, 0x6c}}, // no ctrl_hum on BMP280
		forced4x,
		statusIdle,
		{Addr: 0x76, W: []byte{0xf7}, R: data},
	}
}

// i2cEnv is a test Env whose every I2C call returns bus.
func i2cEnv(t *testing.T, bus I2CBus) Env {
	env := testEnv(t)
	env.I2C = func(name string) (I2CBus, error) {
		if name != "1" {
			t.Errorf("I2C(%q), want \"1\"", name)
		}
		return bus, nil
	}
	return env
}

// faultBus fails Tx number failAt (1-based) instead of passing it on, like a
// sensor dropping off the bus mid-transaction.
type faultBus struct {
	*i2ctest.Playback
	failAt, n int
}

func (f *faultBus) Tx(addr uint16, w, r []byte) error {
	f.n++
	if f.n == f.failAt {
		return errors.New("sysfs-i2c: remote I/O error")
	}
	return f.Playback.Tx(addr, w, r)
}

func near(a, b float64) bool { return math.Abs(a-b) < 0.011 }

func TestBMxx80Read(t *testing.T) {
	for _, tc := range []struct {
		name   string
		driver string
		opts   BMxx80Opts
		ops    []i2ctest.IO
		want   Values
	}{
		{"bme280", "bme280", DefaultBMxx80Opts, bme280Ops(), Values{TemperatureC: 23.72, PressureHPa: 1009.43, HumidityPct: 65.3}},
		{"bme280 oversampling 1", "bme280", BMxx80Opts{Bus: "1", Address: 0x76, Oversampling: 1}, []i2ctest.IO{
			bme280ID, bme280CalTP, bme280CalH,
			{Addr: 0x76, W: []byte{0xf4, 0x24, 0xf2, 0x1, 0xf5, 0xa0, 0xf4, 0x24}},
			{Addr: 0x76, W: []byte{0xf4, 0x25}},
			statusIdle, bme280Data,
		}, Values{TemperatureC: 23.72, PressureHPa: 1009.43, HumidityPct: 65.3}},
		{"bmp280 bosch example", "bmp280", DefaultBMxx80Opts, bmp280Bosch(), Values{TemperatureC: 25.08, PressureHPa: 1006.53}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tc.ops}
			opts := tc.opts
			s, err := open(t, i2cEnv(t, bus), tc.driver, &opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			for k, w := range tc.want {
				if g, ok := got[k]; !ok || !near(g, w) {
					t.Errorf("%s = %v, want %v ±0.01", k, g, w)
				}
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
			wantErr(t, err, "t: "+tc.driver+" /dev/i2c-1 0x76: read: sensor is closed")
		})
	}
}

func TestBMxx80OpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		driver string
		ops    []i2ctest.IO
		want   string
	}{
		{"bme280 on a BMP280", "bme280", bmp280Bosch()[:3], "t: bme280 /dev/i2c-1 0x76: open: chip is a BMP280, which has no humidity sensor; use driver bmp280"},
		{"bmp280 on a BME280", "bmp280", bme280Ops()[:4], "t: bmp280 /dev/i2c-1 0x76: open: chip is a BME280; use driver bme280"},
		{"unknown chip", "bme280", []i2ctest.IO{{Addr: 0x76, W: []byte{0xd0}, R: []byte{0x42}}}, "t: bme280 /dev/i2c-1 0x76: open: bmxx80: unexpected chip id 42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tc.ops}
			d, _ := Lookup(tc.driver)
			s, err := open(t, i2cEnv(t, bus), tc.driver, d.NewOpts())
			if s != nil {
				t.Error("got a sensor with an error")
			}
			wantErr(t, err, tc.want)
			if err := bus.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBMxx80BadAddress(t *testing.T) {
	env := testEnv(t) // its I2C fails the test if called
	_, err := open(t, env, "bme280", &BMxx80Opts{Bus: "1", Address: 0x42, Oversampling: 4})
	wantErr(t, err, "t: bme280: address: 0x42 is not a BME280/BMP280 address")
}

func TestBMxx80BusOpenError(t *testing.T) {
	env := testEnv(t)
	env.I2C = func(string) (I2CBus, error) { return nil, errors.New(`open i2c bus "1": i2creg: no bus found`) }
	_, err := open(t, env, "bme280", &BMxx80Opts{Bus: "1", Address: 0x77, Oversampling: 4})
	wantErr(t, err, `t: bme280 /dev/i2c-1 0x77: open: open i2c bus "1": i2creg: no bus found`)
}

// TestBMxx80BusFault fails each bus transaction in turn: during Open the
// error must name the sensor and hint at wiring, during Read name the sensor.
func TestBMxx80BusFault(t *testing.T) {
	ops := bme280Ops()
	for failAt := 1; failAt <= len(ops); failAt++ {
		bus := &faultBus{Playback: &i2ctest.Playback{Ops: ops[:failAt-1]}, failAt: failAt}
		s, err := open(t, i2cEnv(t, bus), "bme280", &BMxx80Opts{Bus: "1", Address: 0x76, Oversampling: 4})
		if failAt <= 4 { // chip id, 2 calibration reads, config write
			wantErr(t, err, "t: bme280 /dev/i2c-1 0x76: open: no device answered; check the wiring and the address (i2cdetect -y 1): sysfs-i2c: remote I/O error")
		} else {
			if err != nil {
				t.Fatalf("Tx #%d: open: %v", failAt, err)
			}
			_, err = s.Read(context.Background())
			wantErr(t, err, "t: bme280 /dev/i2c-1 0x76: read: sysfs-i2c: remote I/O error")
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		}
		if err := bus.Close(); err != nil {
			t.Errorf("Tx #%d: %v", failAt, err)
		}
	}
}

func TestBMxx80ReadCancelled(t *testing.T) {
	bus := &i2ctest.Playback{Ops: bme280Ops()[:4]} // any read I/O would panic
	s, err := open(t, i2cEnv(t, bus), "bme280", &BMxx80Opts{Bus: "1", Address: 0x76, Oversampling: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Read(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	wantErr(t, err, "t: bme280 /dev/i2c-1 0x76: read: context canceled")
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBMxx80Values(t *testing.T) {
	env := func(c, hPa, pct float64) physic.Env {
		return physic.Env{
			Temperature: physic.ZeroCelsius + physic.Temperature(c*float64(physic.Celsius)),
			Pressure:    physic.Pressure(hPa * float64(100*physic.Pascal)),
			Humidity:    physic.RelativeHumidity(pct * float64(physic.PercentRH)),
		}
	}
	for _, tc := range []struct {
		name string
		e    physic.Env
		bme  bool
		want string
	}{
		{"ok", env(21.5, 1013.25, 45), true, ""},
		{"bmp280 ignores humidity", env(21.5, 1013.25, 150), false, ""},
		{"hot", env(90, 1013, 45), true, "implausible temperature_c 90 (valid -40..85)"},
		{"zero kelvin", physic.Env{Pressure: 1013 * 100 * physic.Pascal}, true, "implausible temperature_c -273.15"},
		{"low pressure", env(20, 250, 45), true, "implausible pressure_hpa 250 (valid 300..1100)"},
		{"humid", env(20, 1013, 100.5), true, "implausible humidity_pct 100.5 (valid 0..100)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := bmxx80Values(tc.e, tc.bme)
			if tc.want != "" {
				wantErr(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := v[HumidityPct]; ok != tc.bme {
				t.Errorf("humidity present = %v, want %v", ok, tc.bme)
			}
			if v[TemperatureC] != 21.5 || v[PressureHPa] != 1013.25 {
				t.Errorf("got %v", v)
			}
		})
	}
}

func TestBusLabel(t *testing.T) {
	for in, want := range map[string]string{"1": "/dev/i2c-1", "12": "/dev/i2c-12", "I2C1": "I2C1", "/dev/i2c-3": "/dev/i2c-3"} {
		if got := busLabel(in); got != want {
			t.Errorf("busLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
