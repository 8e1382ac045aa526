package sensors

import (
	"context"
	"encoding/binary"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// bmp180Bosch is the worked example of the Bosch BMP180 datasheet (section
// 3.5, "Calculating pressure and temperature"): AC1=408 AC2=-72
// AC3=-14383 AC4=32741 AC5=32757 AC6=23153 B1=6190 B2=4 MB=-32768
// MC=-8711 MD=2868, UT=27898, UP=23843 at oss 0 → T = 150 (15.0 °C),
// p = 69964 Pa (699.64 hPa).
func bmp180Bosch() []i2ctest.IO {
	cal := make([]byte, 0, 22)
	for _, v := range []int{408, -72, -14383, 32741, 32757, 23153, 6190, 4, -32768, -8711, 2868} {
		cal = binary.BigEndian.AppendUint16(cal, uint16(int16(v)))
	}
	const ut, up = 27898, 23843
	return []i2ctest.IO{
		{Addr: 0x77, W: []byte{0xd0}, R: []byte{0x55}},                     // chip id: BMP180
		{Addr: 0x77, W: []byte{0xaa}, R: cal},                              // calibration, 0xAA..0xBF
		{Addr: 0x77, W: []byte{0xf4, 0x2e}},                                // start temperature
		{Addr: 0x77, W: []byte{0xf6}, R: []byte{ut >> 8, ut & 0xff}},       // UT
		{Addr: 0x77, W: []byte{0xf4, 0x34}},                                // start pressure, oss 0
		{Addr: 0x77, W: []byte{0xf6}, R: []byte{up >> 8, up & 0xff, 0x00}}, // UP << 8 (oss 0)
	}
}

func TestBMP180DatasheetExample(t *testing.T) {
	bus := &i2ctest.Playback{Ops: bmp180Bosch()}
	d, _ := Lookup("bmp180")
	opts := d.NewOpts().(*BMxx80Opts)
	opts.Oversampling = 1
	s, err := open(t, i2cEnv(t, bus), "bmp180", opts)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !near(v[TemperatureC], 15.0) || !near(v[PressureHPa], 699.64) || len(v) != 2 {
		t.Errorf("got %v, want temperature_c 15.0 and pressure_hpa 699.64", v)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBMP180Errors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		driver string
		opts   BMxx80Opts
		ops    []i2ctest.IO
		want   string
	}{
		{"wrong address", "bmp180", BMxx80Opts{Bus: "1", Address: 0x76, Oversampling: 1}, nil, "the BMP180 answers only at 0x77"},
		{"16x oversampling", "bmp180", BMxx80Opts{Bus: "1", Address: 0x77, Oversampling: 16}, nil, "oversampling 1, 2, 4 or 8"},
		{"bme280 driver on a BMP180", "bme280", BMxx80Opts{Bus: "1", Address: 0x77, Oversampling: 4}, bmp180Bosch()[:2], "chip is a BMP180; use driver bmp180"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tc.ops}
			env := testEnv(t)
			env.I2C = func(string) (I2CBus, error) { return bus, nil }
			opts := tc.opts
			_, err := open(t, env, tc.driver, &opts)
			wantErr(t, err, tc.want)
			if err := bus.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
