package sensors

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// BH1750 datasheet opcodes: power down 0x00, reset 0x07, continuous
// H-resolution mode 0x10, mode 2 0x11, L-resolution 0x13. A read returns
// the 16-bit result, high byte first; lux = raw / 1.2 (and half that in
// H-resolution mode 2). Worked example: 0x8390 = 33680 → 28067 lx.
var (
	bh1750Reset     = i2ctest.IO{Addr: 0x23, W: []byte{0x07}}
	bh1750HighRes   = i2ctest.IO{Addr: 0x23, W: []byte{0x10}}
	bh1750PowerOff  = i2ctest.IO{Addr: 0x23, W: []byte{0x00}}
	bh1750InitOps   = []i2ctest.IO{bh1750Reset, bh1750HighRes, bh1750Reset} // periph's NewI2C
	bh1750Datasheet = bh1750Result(0x8390)
)

func bh1750Result(raw uint16) i2ctest.IO {
	return i2ctest.IO{Addr: 0x23, R: []byte{byte(raw >> 8), byte(raw)}}
}

// bh1750SkipWait skips the wait for the first measurement.
func bh1750SkipWait(s Sensor) { s.(*bh1750Sensor).ready = time.Time{} }

func TestBH1750Read(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode string
		ops  []i2ctest.IO
		want float64
	}{
		// The datasheet's example: 33680 / 1.2 = 28066.67 lx (periph
		// truncates it to 28066).
		{"datasheet high", "high", slices.Concat(bh1750InitOps, []i2ctest.IO{bh1750Datasheet, bh1750PowerOff}), 28066.67},
		// Mode 2 counts half-lux: 33680 / 1.2 / 2 = 14033.33 lx (periph
		// reports 28066).
		{"datasheet high2", "high2", slices.Concat(bh1750InitOps, []i2ctest.IO{{Addr: 0x23, W: []byte{0x11}}, bh1750Datasheet, bh1750PowerOff}), 14033.33},
		// 12 / 1.2 = 10 lx.
		{"low", "low", slices.Concat(bh1750InitOps, []i2ctest.IO{{Addr: 0x23, W: []byte{0x13}}, bh1750Result(12), bh1750PowerOff}), 10},
		// 1 / 1.2 = 0.83 lx (periph: 0).
		{"dim", "high", slices.Concat(bh1750InitOps, []i2ctest.IO{bh1750Result(1), bh1750PowerOff}), 0.83},
		{"dark", "high", slices.Concat(bh1750InitOps, []i2ctest.IO{bh1750Result(0), bh1750PowerOff}), 0},
		// 0xfffe = 65534 / 1.2 = 54611.67 lx, just below full scale.
		{"bright", "high", slices.Concat(bh1750InitOps, []i2ctest.IO{bh1750Result(0xfffe), bh1750PowerOff}), 54611.67},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tc.ops}
			s, err := open(t, i2cEnv(t, bus), "bh1750", &BH1750Opts{Bus: "1", Address: 0x23, Mode: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			bh1750SkipWait(s)
			got, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if want := (Values{"illuminance_lux": tc.want}); !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			if err := s.Close(); err != nil { // power down
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if err := bus.Close(); err != nil { // all ops consumed
				t.Fatal(err)
			}
			_, err = s.Read(context.Background())
			wantErr(t, err, "t: bh1750 /dev/i2c-1 0x23: read: sensor is closed")
		})
	}
}

// TestBH1750FirstReadWaits: the data register reads 0 after the reset
// until the first measurement ends (180 ms at most in H-resolution mode);
// a 0 lx reading then would be garbage, so the first read waits.
func TestBH1750FirstReadWaits(t *testing.T) {
	bus := &i2ctest.Playback{Ops: slices.Concat(bh1750InitOps, []i2ctest.IO{bh1750Datasheet})}
	start := time.Now()
	s, err := open(t, i2cEnv(t, bus), "bh1750", &BH1750Opts{Bus: "1", Address: 0x23, Mode: "high"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 180*time.Millisecond {
		t.Errorf("first read after %v, want at least 180ms", d)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBH1750Saturated(t *testing.T) {
	for mode, want := range map[string]string{
		"high":  "t: bh1750 /dev/i2c-1 0x23: read: sensor saturated: 54612.5 lx or more (full scale)",
		"high2": "t: bh1750 /dev/i2c-1 0x23: read: sensor saturated: 27306.25 lx or more (full scale)",
	} {
		t.Run(mode, func(t *testing.T) {
			ops := bh1750InitOps
			if mode == "high2" {
				ops = slices.Concat(ops, []i2ctest.IO{{Addr: 0x23, W: []byte{0x11}}})
			}
			bus := &i2ctest.Playback{Ops: slices.Concat(ops, []i2ctest.IO{bh1750Result(0xffff)})}
			s, err := open(t, i2cEnv(t, bus), "bh1750", &BH1750Opts{Bus: "1", Address: 0x23, Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			bh1750SkipWait(s)
			v, err := s.Read(context.Background())
			if v != nil {
				t.Errorf("got values %v with the error", v)
			}
			wantErr(t, err, want)
			if err := bus.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBH1750AlternativeAddress(t *testing.T) {
	at := func(io i2ctest.IO) i2ctest.IO { io.Addr = 0x5c; return io }
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{at(bh1750Reset), at(bh1750HighRes), at(bh1750Reset), at(bh1750Datasheet), at(bh1750PowerOff)}}
	s, err := open(t, i2cEnv(t, bus), "bh1750", &BH1750Opts{Bus: "1", Address: 0x5c, Mode: "high"})
	if err != nil {
		t.Fatal(err)
	}
	bh1750SkipWait(s)
	if v, err := s.Read(context.Background()); err != nil || v["illuminance_lux"] != 28066.67 {
		t.Fatalf("got %v, %v", v, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBH1750BusFault(t *testing.T) {
	const id = "t: bh1750 /dev/i2c-1 0x23: "
	const hint = "open: no device answered; check the wiring and the address (i2cdetect -y 1): "
	i2cFaultEach(t, "bh1750", &BH1750Opts{Bus: "1", Address: 0x23, Mode: "low"}, i2cPhases{
		open:  slices.Concat(bh1750InitOps, []i2ctest.IO{{Addr: 0x23, W: []byte{0x13}}}),
		read:  []i2ctest.IO{bh1750Result(12)},
		close: []i2ctest.IO{bh1750PowerOff},
	}, bh1750SkipWait, []string{
		id + hint + "sysfs-i2c: remote I/O error",
		id + hint + "sysfs-i2c: remote I/O error",
		id + hint + "sysfs-i2c: remote I/O error",
		id + hint + "set mode low: sysfs-i2c: remote I/O error",
		id + "read: sysfs-i2c: remote I/O error",
		id + "close: power down: sysfs-i2c: remote I/O error",
	})
}

func TestBH1750Cancelled(t *testing.T) {
	bus := &i2ctest.Playback{Ops: bh1750InitOps} // any read I/O would panic
	s, err := open(t, i2cEnv(t, bus), "bh1750", &BH1750Opts{Bus: "1", Address: 0x23, Mode: "high"})
	if err != nil {
		t.Fatal(err)
	}
	// While waiting for the first measurement.
	i2cReadCancelled(t, s, "t: bh1750 /dev/i2c-1 0x23: read: context canceled")
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}
