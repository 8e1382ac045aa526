package sensors

import (
	"context"
	"reflect"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// HDC302x datasheet: auto-measurement start commands (0x2737 = 10 Hz,
// 0x2334 = 4 Hz, low-power mode 0), measurement readout 0xe000 → T msb,
// T lsb, CRC, RH msb, RH lsb, CRC (CRC-8 0x31, init 0xff); exit
// auto-measurement 0x3093. T = -45 + 175 * raw / 65535 °C,
// RH = 100 * raw / 65535 %.
var (
	hdc302xStart10Hz = i2ctest.IO{Addr: 0x44, W: []byte{0x27, 0x37}}
	hdc302xStop      = i2ctest.IO{Addr: 0x44, W: []byte{0x30, 0x93}}
)

// hdc302xAnswer is the readout for raw t and rh, with CRCs.
func hdc302xAnswer(t, rh uint16) i2ctest.IO {
	tb := []byte{byte(t >> 8), byte(t)}
	hb := []byte{byte(rh >> 8), byte(rh)}
	r := append(append(tb, i2cCRC8(tb)), append(hb, i2cCRC8(hb))...)
	return i2ctest.IO{Addr: 0x44, W: []byte{0xe0, 0x00}, R: r}
}

func TestHDC302xRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate float64
		ops  []i2ctest.IO
		want Values
	}{
		// 0x6666 = 26214 = 0.4 * 65535: -45 + 175*0.4 = 25 °C.
		// 0x8000 = 32768: 100*32768/65535 = 50.0008 %.
		{"25 °C 50 %", 10, []i2ctest.IO{hdc302xStart10Hz, hdc302xAnswer(0x6666, 0x8000), hdc302xStop}, Values{TemperatureC: 25, HumidityPct: 50}},
		// 0x3333 = 13107 = 0.2 * 65535: -45 + 35 = -10 °C.
		// 0x1999 = 6553: 9.99924 %.
		{"-10 °C 10 %", 10, []i2ctest.IO{hdc302xStart10Hz, hdc302xAnswer(0x3333, 0x1999), hdc302xStop}, Values{TemperatureC: -10, HumidityPct: 10}},
		// periph's recorded readout (hdc302x_test.go): 0x68c5 = 26821 →
		// 26.6208 °C; 0x3b82 = 15234 → 23.2456 %.
		{"periph readout 4 Hz", 4, []i2ctest.IO{
			{Addr: 0x44, W: []byte{0x23, 0x34}},
			{Addr: 0x44, W: []byte{0xe0, 0x00}, R: []byte{0x68, 0xc5, 0x51, 0x3b, 0x82, 0x31}},
			hdc302xStop,
		}, Values{TemperatureC: 26.62, HumidityPct: 23.25}},
		// Full scale humidity is 100 %.
		{"100 %", 10, []i2ctest.IO{hdc302xStart10Hz, hdc302xAnswer(0x6666, 0xffff), hdc302xStop}, Values{TemperatureC: 25, HumidityPct: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tc.ops}
			s, err := open(t, i2cEnv(t, bus), "hdc302x", &HDC302xOpts{Bus: "1", Address: 0x44, SampleRate: tc.rate})
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
			if err := s.Close(); err != nil { // exit auto-measurement
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if err := bus.Close(); err != nil { // all ops consumed
				t.Fatal(err)
			}
			_, err = s.Read(context.Background())
			wantErr(t, err, "t: hdc302x /dev/i2c-1 0x44: read: sensor is closed")
		})
	}
}

func TestHDC302xBadReadings(t *testing.T) {
	badCRC := hdc302xAnswer(0x6666, 0x8000)
	badCRC.R[5] ^= 0x01
	for _, tc := range []struct {
		name   string
		answer i2ctest.IO
		want   string
	}{
		{"crc", badCRC, "t: hdc302x /dev/i2c-1 0x44: read: hdc302x: invalid crc"},
		// 0xffff: -45 + 175 = 130 °C.
		{"all ones", hdc302xAnswer(0xffff, 0xffff), "t: hdc302x /dev/i2c-1 0x44: read: implausible temperature_c 130 (valid -40..125)"},
		// 0x0000: -45 °C.
		{"all zero", hdc302xAnswer(0x0000, 0x0000), "implausible temperature_c -45 (valid -40..125)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: []i2ctest.IO{hdc302xStart10Hz, tc.answer}}
			s, err := open(t, i2cEnv(t, bus), "hdc302x", &HDC302xOpts{Bus: "1", Address: 0x44, SampleRate: 10})
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

// TestHDC302xBusFault: Tx 1 is the constructor's start command. periph's
// NewI2C returns a *Dev together with that error; the driver returns no
// sensor (and does not use that Dev: any further Tx would panic).
func TestHDC302xBusFault(t *testing.T) {
	i2cFaultEach(t, "hdc302x", &HDC302xOpts{Bus: "1", Address: 0x44, SampleRate: 10}, i2cPhases{
		open:  []i2ctest.IO{hdc302xStart10Hz},
		read:  []i2ctest.IO{hdc302xAnswer(0x6666, 0x8000)},
		close: []i2ctest.IO{hdc302xStop},
	}, nil, []string{
		"t: hdc302x /dev/i2c-1 0x44: open: no device answered; check the wiring and the address (i2cdetect -y 1): hdc302x: init sysfs-i2c: remote I/O error",
		"t: hdc302x /dev/i2c-1 0x44: read: hdc302x: sysfs-i2c: remote I/O error",
		"t: hdc302x /dev/i2c-1 0x44: close: sysfs-i2c: remote I/O error",
	})
}

func TestHDC302xCancelled(t *testing.T) {
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{hdc302xStart10Hz}} // any read I/O would panic
	s, err := open(t, i2cEnv(t, bus), "hdc302x", &HDC302xOpts{Bus: "1", Address: 0x44, SampleRate: 10})
	if err != nil {
		t.Fatal(err)
	}
	i2cReadCancelled(t, s, "t: hdc302x /dev/i2c-1 0x44: read: context canceled")
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}
