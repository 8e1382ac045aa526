package sensors

import (
	"context"
	"reflect"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/am2320"
)

// AM2320 datasheet: wake-up write, function code 0x03 for 4 registers from
// 0x00, then 8 bytes: 0x03 0x04 RH_hi RH_lo T_hi T_lo CRC_lo CRC_hi.
// RH and T are tenths; T is sign-magnitude (bit 15 = minus).
var (
	am2320Wake    = i2ctest.IO{Addr: 0x5c, W: []byte{0x00}}
	am2320Command = i2ctest.IO{Addr: 0x5c, W: []byte{0x03, 0x00, 0x04}}
)

// am2320Answer is the sensor's answer for raw rh and t, with its CRC.
func am2320Answer(rh, t uint16) i2ctest.IO {
	b := []byte{0x03, 0x04, byte(rh >> 8), byte(rh), byte(t >> 8), byte(t)}
	c := am2320CRC16(b)
	return i2ctest.IO{Addr: 0x5c, R: append(b, byte(c), byte(c>>8))}
}

func am2320Ops(answer i2ctest.IO) []i2ctest.IO {
	return []i2ctest.IO{am2320Wake, am2320Command, answer}
}

func TestAM2320CRC(t *testing.T) {
	// The datasheet's example answer: 03 04 01 f4 00 fa, CRC 31 a5 (low
	// byte first): 50.0 %RH, 25.0 °C.
	if got := am2320CRC16([]byte{0x03, 0x04, 0x01, 0xf4, 0x00, 0xfa}); got != 0xa531 {
		t.Fatalf("crc = %#04x, want 0xa531", got)
	}
	if got := am2320Answer(0x01f4, 0x00fa); !reflect.DeepEqual(got.R, []byte{0x03, 0x04, 0x01, 0xf4, 0x00, 0xfa, 0x31, 0xa5}) {
		t.Fatalf("answer % x", got.R)
	}
}

func TestAM2320Read(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer i2ctest.IO
		want   Values
	}{
		// The datasheet's example: 0x01f4 = 500 → 50.0 %, 0x00fa = 250 → 25.0 °C.
		{"datasheet 25.0 °C", am2320Answer(0x01f4, 0x00fa), Values{TemperatureC: 25, HumidityPct: 50}},
		// The datasheet's negative example: 0x8065 = minus, 0x65 = 101 →
		// -10.1 °C (periph decodes it as -3266.7 °C).
		{"datasheet -10.1 °C", am2320Answer(0x01f4, 0x8065), Values{TemperatureC: -10.1, HumidityPct: 50}},
		// 0x0001 → 0.1 °C; 0x03e7 = 999 → 99.9 %.
		{"0.1 °C 99.9 %", am2320Answer(0x03e7, 0x0001), Values{TemperatureC: 0.1, HumidityPct: 99.9}},
		// Minus zero is zero.
		{"-0.0 °C", am2320Answer(0x0000, 0x8000), Values{TemperatureC: 0, HumidityPct: 0}},
		// 0x8190 = -40.0 °C, the bottom of the range.
		{"-40.0 °C", am2320Answer(0x0123, 0x8190), Values{TemperatureC: -40, HumidityPct: 29.1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: am2320Ops(tc.answer)}
			s, err := open(t, i2cEnv(t, bus), "am2320", &AM2320Opts{Bus: "1", Address: 0x5c})
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
			if c := got[TemperatureC]; c == 0 && 1/c < 0 {
				t.Error("temperature is -0")
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
			wantErr(t, err, "t: am2320 /dev/i2c-1 0x5c: read: sensor is closed")
		})
	}
}

// TestAM2320PeriphSignBug documents why the driver does not use periph's
// Sense: the same answer through periph gives -3266.7 °C. If this fails,
// periph has fixed its decoding.
func TestAM2320PeriphSignBug(t *testing.T) {
	a := am2320Answer(0x01f4, 0x8065)
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{am2320Wake, {Addr: 0x5c, W: []byte{0x03, 0x00, 0x04}, R: a.R}}}
	dev, err := am2320.NewI2C(bus, am2320.SensorAddress)
	if err != nil {
		t.Fatal(err)
	}
	var e physic.Env
	if err := dev.Sense(&e); err != nil {
		t.Fatal(err)
	}
	if got := round2(e.Temperature.Celsius()); got != -3266.7 {
		t.Errorf("periph decodes 0x8065 as %v °C; -3266.7 expected (the bug this driver avoids)", got)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAM2320BadReadings(t *testing.T) {
	badCRC := am2320Answer(0x01f4, 0x00fa)
	badCRC.R[7] ^= 0x01
	for _, tc := range []struct {
		name   string
		answer i2ctest.IO
		want   string
	}{
		{"crc", badCRC, "t: am2320 /dev/i2c-1 0x5c: read: crc mismatch: received 0xa431, computed 0xa531"},
		{"no answer", i2ctest.IO{Addr: 0x5c, R: []byte{0x80, 0x02, 0, 0, 0, 0, 0, 0}}, "t: am2320 /dev/i2c-1 0x5c: read: unexpected response 80 02 00 00 00 00 00 00 (want 03 04 ...)"},
		{"all ones", am2320Answer(0xffff, 0xffff), "t: am2320 /dev/i2c-1 0x5c: read: implausible humidity_pct 6553.5 (valid 0..100)"},
		// What periph's decoding would turn -10.1 °C into, were it the raw value.
		{"-3266.7", am2320Answer(0x01f4, 0xff9b), "implausible temperature_c -3266.7 (valid -40..80)"},
		{"hot", am2320Answer(0x01f4, 0x0321), "implausible temperature_c 80.1 (valid -40..80)"},
		{"cold", am2320Answer(0x01f4, 0x8191), "implausible temperature_c -40.1 (valid -40..80)"},
		{"humid", am2320Answer(0x03e9, 0x00fa), "implausible humidity_pct 100.1 (valid 0..100)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: am2320Ops(tc.answer)}
			s, err := open(t, i2cEnv(t, bus), "am2320", &AM2320Opts{Bus: "1", Address: 0x5c})
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

// TestAM2320TooSoon: a second read within 2 s is refused without bus I/O.
func TestAM2320TooSoon(t *testing.T) {
	bus := &i2ctest.Playback{Ops: append(am2320Ops(am2320Answer(0x01f4, 0x00fa)), am2320Ops(am2320Answer(0x01f5, 0x00fb))...)}
	s, err := open(t, i2cEnv(t, bus), "am2320", &AM2320Opts{Bus: "1", Address: 0x5c})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(context.Background())
	wantErr(t, err, "t: am2320 /dev/i2c-1 0x5c: read: too soon: the AM2320 needs 2s between reads and the last was ", "; set the sensor's interval to 3s or more")
	// Pretend 2 s went by.
	as := s.(*am2320Sensor)
	as.last = as.last.Add(-am2320MinGap)
	v, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Values{TemperatureC: 25.1, HumidityPct: 50.1}); !reflect.DeepEqual(v, want) {
		t.Errorf("got %v, want %v", v, want)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAM2320BusFault(t *testing.T) {
	// Open does no I/O. A failed wake-up write is what a sleeping sensor
	// does, and is ignored: Tx 1 failing still gives a reading.
	bus := &faultBus{Playback: &i2ctest.Playback{Ops: am2320Ops(am2320Answer(0x01f4, 0x00fa))[1:]}, failAt: 1}
	s, err := open(t, i2cEnv(t, bus), "am2320", &AM2320Opts{Bus: "1", Address: 0x5c})
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Read(context.Background())
	if err != nil {
		t.Fatalf("failed wake-up: %v", err)
	}
	if want := (Values{TemperatureC: 25, HumidityPct: 50}); !reflect.DeepEqual(v, want) {
		t.Errorf("got %v, want %v", v, want)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	// Then the command write and the answer read.
	ops := am2320Ops(am2320Answer(0x01f4, 0x00fa))
	for failAt, want := range map[int]string{
		2: "t: am2320 /dev/i2c-1 0x5c: read: send read command: sysfs-i2c: remote I/O error",
		3: "t: am2320 /dev/i2c-1 0x5c: read: read response: sysfs-i2c: remote I/O error",
	} {
		bus := &faultBus{Playback: &i2ctest.Playback{Ops: ops[:failAt-1]}, failAt: failAt}
		s, err := open(t, i2cEnv(t, bus), "am2320", &AM2320Opts{Bus: "1", Address: 0x5c})
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.Read(context.Background())
		if v != nil {
			t.Errorf("Tx #%d: got values %v with the error", failAt, v)
		}
		wantErr(t, err, want)
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := bus.Close(); err != nil {
			t.Errorf("Tx #%d: %v", failAt, err)
		}
	}
}

func TestAM2320Cancelled(t *testing.T) {
	bus := &i2ctest.Playback{} // any I/O would panic
	s, err := open(t, i2cEnv(t, bus), "am2320", &AM2320Opts{Bus: "1", Address: 0x5c})
	if err != nil {
		t.Fatal(err)
	}
	i2cReadCancelled(t, s, "t: am2320 /dev/i2c-1 0x5c: read: context canceled")

	// Cancelled during the wake-up wait: the wake-up write went out, the
	// command did not.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus = &i2ctest.Playback{Ops: []i2ctest.IO{am2320Wake}}
	s, err = open(t, i2cEnv(t, am2320CancelBus{bus, cancel}), "am2320", &AM2320Opts{Bus: "1", Address: 0x5c})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(ctx)
	wantErr(t, err, "t: am2320 /dev/i2c-1 0x5c: read: context canceled")
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

// am2320CancelBus cancels a context after each transaction.
type am2320CancelBus struct {
	*i2ctest.Playback
	cancel context.CancelFunc
}

func (b am2320CancelBus) Tx(addr uint16, w, r []byte) error {
	defer b.cancel()
	return b.Playback.Tx(addr, w, r)
}
