package sensors

import (
	"context"
	"reflect"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// MCP9808 datasheet: manufacturer id register 0x06 = 0x0054, device id
// register 0x07 = 0x04 (high byte) + revision; resolution register 0x08
// (0x03 = 0.0625 °C); configuration 0x01 (0x0000 = continuous conversion,
// 0x0100 = shutdown); ambient temperature 0x05: bits 15-13 alert flags,
// bit 12 sign, bits 11-0 in 1/16 °C. T = Upper*16 + Lower/16, minus 256
// when the sign bit is set.
var (
	mcp9808Manufacturer = i2ctest.IO{Addr: 0x18, W: []byte{0x06}, R: []byte{0x00, 0x54}}
	mcp9808DeviceID     = i2ctest.IO{Addr: 0x18, W: []byte{0x07}, R: []byte{0x04, 0x00}}
	mcp9808Resolution   = i2ctest.IO{Addr: 0x18, W: []byte{0x08, 0x03}}
	mcp9808Enable       = i2ctest.IO{Addr: 0x18, W: []byte{0x01, 0x00, 0x00}}
	mcp9808Shutdown     = i2ctest.IO{Addr: 0x18, W: []byte{0x01, 0x01, 0x00}}
)

func mcp9808OpenOps() []i2ctest.IO {
	return []i2ctest.IO{mcp9808Manufacturer, mcp9808DeviceID, mcp9808Resolution, mcp9808Enable}
}

func mcp9808Temp(hi, lo byte) i2ctest.IO {
	return i2ctest.IO{Addr: 0x18, W: []byte{0x05}, R: []byte{hi, lo}}
}

// mcp9808SkipWait skips the wait for the first conversion.
func mcp9808SkipWait(s Sensor) { s.(*mcp9808Sensor).ready = time.Time{} }

func TestMCP9808Read(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hi, lo byte
		want   float64
	}{
		// 0x01 0x94: 1*16 + 0x94/16 = 16 + 9.25 = 25.25 °C.
		{"25.25 °C", 0x01, 0x94, 25.25},
		// The same with all three alert flags (bits 15-13) set.
		{"alert flags", 0xe1, 0x94, 25.25},
		// 0x1f 0x60: sign set; 15*16 + 6 = 246 - 256 = -10 °C (datasheet
		// and periph's test).
		{"-10 °C", 0x1f, 0x60, -10},
		// 0x1f 0xff: 255.9375 - 256 = -0.0625 °C.
		{"-0.0625 °C", 0x1f, 0xff, -0.06},
		// 0x07 0xd0: 7*16 + 13 = 125 °C, the top of the range.
		{"125 °C", 0x07, 0xd0, 125},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: append(mcp9808OpenOps(), mcp9808Temp(tc.hi, tc.lo), mcp9808Shutdown)}
			s, err := open(t, i2cEnv(t, bus), "mcp9808", &MCP9808Opts{Bus: "1", Address: 0x18})
			if err != nil {
				t.Fatal(err)
			}
			mcp9808SkipWait(s)
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
			wantErr(t, err, "t: mcp9808 /dev/i2c-1 0x18: read: sensor is closed")
		})
	}
}

// TestMCP9808FirstReadWaits: the first read waits for the first conversion
// after Open (250 ms at 0.0625 °C); the register holds 0 °C until then.
func TestMCP9808FirstReadWaits(t *testing.T) {
	bus := &i2ctest.Playback{Ops: append(mcp9808OpenOps(), mcp9808Temp(0x01, 0x94))}
	start := time.Now()
	s, err := open(t, i2cEnv(t, bus), "mcp9808", &MCP9808Opts{Bus: "1", Address: 0x18})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < mcp9808Conversion {
		t.Errorf("first read after %v, want at least %v", d, mcp9808Conversion)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMCP9808BadReadings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hi, lo byte
		want   string
	}{
		// 0x1d 0x80: 13*16 + 8 = 216 - 256 = -40 °C is fine; 0x1d 0x70 is -41.
		{"below -40", 0x1d, 0x70, "t: mcp9808 /dev/i2c-1 0x18: read: implausible temperature_c -41 (valid -40..125)"},
		// 0x10 0x00: sign only, -256 °C.
		{"-256", 0x10, 0x00, "implausible temperature_c -256 (valid -40..125)"},
		// 0x0f 0xff: 255.9375 °C.
		{"hot", 0x0f, 0xff, "implausible temperature_c 255.94 (valid -40..125)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: append(mcp9808OpenOps(), mcp9808Temp(tc.hi, tc.lo))}
			s, err := open(t, i2cEnv(t, bus), "mcp9808", &MCP9808Opts{Bus: "1", Address: 0x18})
			if err != nil {
				t.Fatal(err)
			}
			mcp9808SkipWait(s)
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

func TestMCP9808WrongChip(t *testing.T) {
	for name, ops := range map[string][]i2ctest.IO{
		"manufacturer": {{Addr: 0x18, W: []byte{0x06}, R: []byte{0x00, 0x00}}, mcp9808DeviceID},
		"device":       {mcp9808Manufacturer, {Addr: 0x18, W: []byte{0x07}, R: []byte{0x75, 0x00}}},
	} {
		t.Run(name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: ops} // nothing written to a chip that is not an MCP9808
			s, err := open(t, i2cEnv(t, bus), "mcp9808", &MCP9808Opts{Bus: "1", Address: 0x18})
			if s != nil {
				t.Error("got a sensor with the error")
			}
			wantErr(t, err, "t: mcp9808 /dev/i2c-1 0x18: open: not an MCP9808: manufacturer id ", "(want 0x0054, 0x04); check the address")
			if err := bus.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMCP9808BusFault: periph replaces its I/O errors with its own
// sentinels ("failed to ..."), so only the id reads, done here, keep the
// cause.
func TestMCP9808BusFault(t *testing.T) {
	const id = "t: mcp9808 /dev/i2c-1 0x18: "
	i2cFaultEach(t, "mcp9808", &MCP9808Opts{Bus: "1", Address: 0x18}, i2cPhases{
		open:  mcp9808OpenOps(),
		read:  []i2ctest.IO{mcp9808Temp(0x01, 0x94)},
		close: []i2ctest.IO{mcp9808Shutdown},
	}, mcp9808SkipWait, []string{
		id + "open: no device answered; check the wiring and the address (i2cdetect -y 1): read manufacturer id: sysfs-i2c: remote I/O error",
		id + "open: no device answered; check the wiring and the address (i2cdetect -y 1): read device id: sysfs-i2c: remote I/O error",
		id + "open: failed to write resolution configuration",
		id + "open: failed to write configuration",
		id + "read: failed to read ambient temperature",
		id + "close: failed to write configuration",
	})
}

func TestMCP9808Cancelled(t *testing.T) {
	bus := &i2ctest.Playback{Ops: mcp9808OpenOps()} // any read I/O would panic
	s, err := open(t, i2cEnv(t, bus), "mcp9808", &MCP9808Opts{Bus: "1", Address: 0x18})
	if err != nil {
		t.Fatal(err)
	}
	// Also while waiting for the first conversion.
	s.(*mcp9808Sensor).ready = time.Now().Add(time.Hour)
	i2cReadCancelled(t, s, "t: mcp9808 /dev/i2c-1 0x18: read: context canceled")
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}
