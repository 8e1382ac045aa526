package sensors

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// TMP102 datasheet: pointer 0x00 temperature, 0x01 configuration (16 bits,
// power-on 0x60a0: 12-bit, 4 Hz conversion, SD = bit 8 clear). The
// temperature is 12 bits, two's complement, 0.0625 °C per LSB, left-aligned
// in two bytes (Table "12-bit temperature data format": 25 °C = 0x190,
// -25 °C = 0xe70, -0.25 °C = 0xffc, 127.9375 °C = 0x7ff, -55 °C = 0xc90).
var (
	tmp102ReadConfig = i2ctest.IO{Addr: 0x48, W: []byte{0x01}, R: []byte{0x60, 0xa0}}
	tmp102Configure  = i2ctest.IO{Addr: 0x48, W: []byte{0x01, 0x60, 0xa0}} // SD clear, TM comparator, 4 Hz
	tmp102Shutdown   = i2ctest.IO{Addr: 0x48, W: []byte{0x01, 0x61, 0xa0}} // SD set
)

func tmp102OpenOps() []i2ctest.IO { return []i2ctest.IO{tmp102ReadConfig, tmp102Configure} }

func tmp102CloseOps() []i2ctest.IO { return []i2ctest.IO{tmp102ReadConfig, tmp102Shutdown} }

// tmp102Temp is a temperature register read of the 12-bit count.
func tmp102Temp(count uint16) i2ctest.IO {
	return i2ctest.IO{Addr: 0x48, W: []byte{0x00}, R: []byte{byte(count >> 4), byte(count << 4)}}
}

// tmp102SkipWait skips the wait for the first conversion.
func tmp102SkipWait(s Sensor) { s.(*tmp102Sensor).ready = time.Time{} }

func TestTMP102Read(t *testing.T) {
	for _, tc := range []struct {
		name  string
		count uint16
		want  float64
	}{
		{"25 °C", 0x190, 25},           // 400 * 0.0625
		{"-25 °C", 0xe70, -25},         // 0xe70 - 0x1000 = -400
		{"-0.25 °C", 0xffc, -0.25},     // -4
		{"0.0625 °C", 0x001, 0.06},     // 1 LSB, rounded to 2 decimals
		{"100 °C", 0x640, 100},         // 1600
		{"-40 °C", 0xd80, -40},         // -640, the bottom of the range
		{"124.9375 °C", 0x7cf, 124.94}, // 1999
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := slices.Concat(tmp102OpenOps(), []i2ctest.IO{tmp102Temp(tc.count)}, tmp102CloseOps())
			bus := &i2ctest.Playback{Ops: ops}
			s, err := open(t, i2cEnv(t, bus), "tmp102", &TMP102Opts{Bus: "1", Address: 0x48})
			if err != nil {
				t.Fatal(err)
			}
			tmp102SkipWait(s)
			got, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if want := (Values{TemperatureC: tc.want}); !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			if err := s.Close(); err != nil { // shutdown
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if err := bus.Close(); err != nil { // all ops consumed
				t.Fatal(err)
			}
			_, err = s.Read(context.Background())
			wantErr(t, err, "t: tmp102 /dev/i2c-1 0x48: read: sensor is closed")
		})
	}
}

// TestTMP102Reopen: after Close the chip is in shutdown; Open clears SD.
// The first read waits for the first conversion (the register holds 0 °C
// or a stale value until then).
func TestTMP102Reopen(t *testing.T) {
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x48, W: []byte{0x01}, R: []byte{0x61, 0xa0}}, // SD set
		tmp102Configure,
		tmp102Temp(0x190),
	}}
	start := time.Now()
	s, err := open(t, i2cEnv(t, bus), "tmp102", &TMP102Opts{Bus: "1", Address: 0x48})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < tmp102Conversion {
		t.Errorf("first read after %v, want at least %v", d, tmp102Conversion)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTMP102BadReadings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		count uint16
		want  string
	}{
		{"127.9375 °C", 0x7ff, "t: tmp102 /dev/i2c-1 0x48: read: implausible temperature_c 127.94 (valid -40..125)"},
		{"-55 °C", 0xc90, "implausible temperature_c -55 (valid -40..125)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: append(tmp102OpenOps(), tmp102Temp(tc.count))}
			s, err := open(t, i2cEnv(t, bus), "tmp102", &TMP102Opts{Bus: "1", Address: 0x48})
			if err != nil {
				t.Fatal(err)
			}
			tmp102SkipWait(s)
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

// TestTMP102BusFault: Tx 1, periph's configuration read, ignores its error
// (periph then writes a zero configuration with the 4 Hz rate, which still
// starts the chip); Tx 2 failing makes NewI2C return a *Dev with the error,
// which is never used.
func TestTMP102BusFault(t *testing.T) {
	const id = "t: tmp102 /dev/i2c-1 0x48: "
	// Tx 1.
	bus := &faultBus{Playback: &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x48, W: []byte{0x01, 0x00, 0x80}},
		tmp102Temp(0x190),
	}}, failAt: 1}
	s, err := open(t, i2cEnv(t, bus), "tmp102", &TMP102Opts{Bus: "1", Address: 0x48})
	if err != nil {
		t.Fatal(err)
	}
	tmp102SkipWait(s)
	if v, err := s.Read(context.Background()); err != nil || v[TemperatureC] != 25 {
		t.Fatalf("got %v, %v", v, err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	// Tx 2 onwards.
	i2cFaultEach(t, "tmp102", &TMP102Opts{Bus: "1", Address: 0x48}, i2cPhases{
		open:  tmp102OpenOps(),
		read:  []i2ctest.IO{tmp102Temp(0x190)},
		close: tmp102CloseOps(),
	}, tmp102SkipWait, []string{
		"", // above
		id + "open: no device answered; check the wiring and the address (i2cdetect -y 1): sysfs-i2c: remote I/O error",
		id + "read: sysfs-i2c: remote I/O error",
		id + "close: read configuration: sysfs-i2c: remote I/O error",
		id + "close: write shutdown: sysfs-i2c: remote I/O error",
	})
}

func TestTMP102Cancelled(t *testing.T) {
	bus := &i2ctest.Playback{Ops: tmp102OpenOps()} // any read I/O would panic
	s, err := open(t, i2cEnv(t, bus), "tmp102", &TMP102Opts{Bus: "1", Address: 0x48})
	if err != nil {
		t.Fatal(err)
	}
	s.(*tmp102Sensor).ready = time.Now().Add(time.Hour)
	i2cReadCancelled(t, s, "t: tmp102 /dev/i2c-1 0x48: read: context canceled")
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}
