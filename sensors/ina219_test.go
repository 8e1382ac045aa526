package sensors

import (
	"context"
	"errors"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// INA219 registers (datasheet 8.6): 0 configuration, 1 shunt voltage
// (10 µV/count), 2 bus voltage (bits 15..3, 4 mV/count; bit 1 CNVR,
// bit 0 OVF), 3 power, 4 current, 5 calibration.
func ina219Reg(reg byte, v uint16) i2ctest.IO {
	return i2ctest.IO{Addr: 0x40, W: []byte{reg}, R: []byte{byte(v >> 8), byte(v)}}
}

func ina219Write(reg byte, v uint16) i2ctest.IO {
	return i2ctest.IO{Addr: 0x40, W: []byte{reg, byte(v >> 8), byte(v)}}
}

// ina219Bus is the bus voltage register for volts, conversion ready.
func ina219Bus(volts float64) uint16 { return uint16(volts/0.004)<<3 | 2 }

// ina219Datasheet is the worked example of the INA219 datasheet (8.5.1,
// "Programming the Calibration Register", figure 27): a 10 A load through
// a 2 mΩ shunt on a 12 V bus. Current_LSB = 1 mA, so max_current_a =
// 32768 × 1 mA = 32.768; Cal = trunc(0.04096 / (0.001 × 0.002)) = 20480;
// VSHUNT = 20 mV = 2000 counts; Current = 2000 × 20480 / 4096 = 10000
// (10 A); VBUS = 12 V = 3000 counts (0x5dc0, | CNVR); Power = 10000 ×
// 3000 / 5000 = 6000, × 20 mW = 120 W.
func ina219Datasheet() ([]i2ctest.IO, INA219Opts) {
	return []i2ctest.IO{
		ina219Write(5, 20480),  // calibration (periph)
		ina219Write(0, 0x1fff), // configuration (periph): 16 V range
		ina219Write(0, 0x3fff), // ours: 32 V range
		ina219Reg(1, 2000),
		ina219Reg(2, 0x5dc0|2),
		ina219Reg(4, 10000),
		ina219Reg(3, 6000),
	}, INA219Opts{Bus: "1", Address: 0x40, ShuntOhms: 0.002, MaxCurrentA: 32.768}
}

func TestINA219Read(t *testing.T) {
	dsOps, dsOpts := ina219Datasheet()
	for _, tc := range []struct {
		name  string
		opts  INA219Opts
		ops   []i2ctest.IO
		waits int
		want  Values
	}{
		{"datasheet example", dsOpts, dsOps, 0,
			Values{INA219BusVoltageV: 12, INA219ShuntVoltageV: 0.02, INA219CurrentA: 10, INA219PowerW: 120}},
		{
			// Defaults: 0.1 Ω, 3.2 A: Current_LSB = 3.2/32768 = 97.656 µA,
			// Cal = 0.04096/(97.656e-6 × 0.1) = 4194 (0x1062), Power_LSB =
			// 1.953 mW. 1 A → 100 mV = 10000 counts; Current = 10000 ×
			// 4194/4096 = 10239 → 0.99990 A; 5 V; Power = 10239 × 1250 /
			// 5000 = 2559 → 4.998 W.
			"defaults, 1 A at 5 V", DefaultINA219Opts, []i2ctest.IO{
				ina219Write(5, 0x1062), ina219Write(0, 0x1fff), ina219Write(0, 0x3fff),
				ina219Reg(1, 10000), ina219Reg(2, ina219Bus(5)), ina219Reg(4, 10239), ina219Reg(3, 2559),
			}, 0,
			Values{INA219BusVoltageV: 5, INA219ShuntVoltageV: 0.1, INA219CurrentA: 0.9999, INA219PowerW: 4.99805},
		},
		{
			// Right after open no conversion has finished (CNVR clear):
			// wait one conversion time and read again.
			"first conversion pending, reverse current at 24 V", DefaultINA219Opts, []i2ctest.IO{
				ina219Write(5, 0x1062), ina219Write(0, 0x1fff), ina219Write(0, 0x3fff),
				ina219Reg(1, 0), ina219Reg(2, 0), ina219Reg(4, 0), ina219Reg(3, 0),
				// -0.5 A: shunt -50 mV = -5000 counts (two's complement).
				ina219Reg(1, uint16(0x10000-5000)), ina219Reg(2, ina219Bus(24)), ina219Reg(4, uint16(0x10000-5120)), ina219Reg(3, 6144),
			}, 1,
			Values{INA219BusVoltageV: 24, INA219ShuntVoltageV: -0.05, INA219CurrentA: -0.499999, INA219PowerW: 12},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tc.ops}
			opts := tc.opts
			s, err := open(t, i2cEnv(t, bus), "ina219", &opts)
			if err != nil {
				t.Fatal(err)
			}
			waits := 0
			s.(*ina219Sensor).wait = func(_ context.Context, d time.Duration) error {
				if d != 140*time.Millisecond {
					t.Errorf("wait %s, want 140ms", d)
				}
				waits++
				return nil
			}
			got, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			for k, w := range tc.want {
				if g, ok := got[k]; !ok || g != w {
					t.Errorf("%s = %v, want %v", k, g, w)
				}
			}
			if waits != tc.waits {
				t.Errorf("waited %d times, want %d", waits, tc.waits)
			}
			for range 2 {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if err := bus.Close(); err != nil {
				t.Fatal(err)
			}
			_, err = s.Read(context.Background())
			wantErr(t, err, "t: ina219 /dev/i2c-1 0x40: read: sensor is closed")
		})
	}
}

func TestINA219ReadErrors(t *testing.T) {
	open3 := []i2ctest.IO{ina219Write(5, 0x1062), ina219Write(0, 0x1fff), ina219Write(0, 0x3fff)}
	for _, tc := range []struct {
		name string
		ops  []i2ctest.IO
		want string
	}{
		{"math overflow", []i2ctest.IO{ina219Reg(1, 32000), ina219Reg(2, ina219Bus(12)|1)},
			"t: ina219 /dev/i2c-1 0x40: read: current or power out of range (math overflow flag set): the current exceeds max_current_a, or shunt_ohms is wrong"},
		{"no conversion", []i2ctest.IO{
			ina219Reg(1, 0), ina219Reg(2, 0), ina219Reg(4, 0), ina219Reg(3, 0),
			ina219Reg(1, 0), ina219Reg(2, 0), ina219Reg(4, 0), ina219Reg(3, 0),
		}, "t: ina219 /dev/i2c-1 0x40: read: no conversion finished within 140ms (conversion ready bit clear twice)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: append(append([]i2ctest.IO{}, open3...), tc.ops...)}
			s, err := open(t, i2cEnv(t, bus), "ina219", &INA219Opts{Bus: "1", Address: 0x40, ShuntOhms: 0.1, MaxCurrentA: 3.2})
			if err != nil {
				t.Fatal(err)
			}
			s.(*ina219Sensor).wait = func(context.Context, time.Duration) error { return nil }
			_, err = s.Read(context.Background())
			wantErr(t, err, tc.want)
			if err := bus.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		bus := &i2ctest.Playback{Ops: open3}
		s, err := open(t, i2cEnv(t, bus), "ina219", &INA219Opts{Bus: "1", Address: 0x40, ShuntOhms: 0.1, MaxCurrentA: 3.2})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}

// TestINA219BusFault fails each transaction in turn. periph replaces the
// I/O error by a sentinel; the message must still carry both.
func TestINA219BusFault(t *testing.T) {
	ops, opts := ina219Datasheet()
	const id = "t: ina219 /dev/i2c-1 0x40: "
	const io = "sysfs-i2c: remote I/O error"
	const hint = "open: no device answered; check the wiring and the address (i2cdetect -y 1): "
	want := []string{
		id + hint + io, // calibration: periph returns the bus error itself
		id + hint + "failed to write to configuration register: " + io,
		id + hint + "set the 32 V bus range (configuration 0x3fff): " + io,
		id + "read: failed to read shunt voltage: " + io,
		id + "read: failed to read bus voltage: " + io,
		id + "read: failed to read current: " + io,
		id + "read: failed to read power: " + io,
	}
	for failAt := 1; failAt <= len(ops); failAt++ {
		bus := &faultBus{Playback: &i2ctest.Playback{Ops: ops[:failAt-1]}, failAt: failAt}
		o := opts
		s, err := open(t, i2cEnv(t, bus), "ina219", &o)
		if failAt <= 3 {
			if s != nil {
				t.Errorf("Tx #%d: got a sensor with an error", failAt)
			}
		} else {
			if err != nil {
				t.Fatalf("Tx #%d: open: %v", failAt, err)
			}
			_, err = s.Read(context.Background())
		}
		wantErr(t, err, want[failAt-1])
		if err := bus.Close(); err != nil {
			t.Errorf("Tx #%d: %v", failAt, err)
		}
	}
}

func TestINA219Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    INA219Opts
		want string
	}{
		{"defaults", DefaultINA219Opts, ""},
		{"datasheet", INA219Opts{Bus: "1", Address: 0x4f, ShuntOhms: 0.002, MaxCurrentA: 32.768}, ""},
		{"bus", INA219Opts{Address: 0x40, ShuntOhms: 0.1, MaxCurrentA: 3.2}, "bus: empty"},
		{"address", INA219Opts{Bus: "1", Address: 0x50, ShuntOhms: 0.1, MaxCurrentA: 3.2}, "address: 0x50 is not an INA219 address; use 0x40..0x4f"},
		{"shunt", INA219Opts{Bus: "1", Address: 0x40, ShuntOhms: 0, MaxCurrentA: 3.2}, "shunt_ohms: 0 is not a shunt resistor"},
		{"negative shunt", INA219Opts{Bus: "1", Address: 0x40, ShuntOhms: -0.1, MaxCurrentA: 3.2}, "shunt_ohms: -0.1"},
		{"current", INA219Opts{Bus: "1", Address: 0x40, ShuntOhms: 0.1}, "max_current_a: 0 is not valid"},
		{"beyond shunt range", INA219Opts{Bus: "1", Address: 0x40, ShuntOhms: 0.1, MaxCurrentA: 5}, "max_current_a: 5 A through 0.1 Ω is 0.5 V, beyond the INA219's 0.32 V shunt range; use at most 3.2 A"},
		{"calibration overflow", INA219Opts{Bus: "1", Address: 0x40, ShuntOhms: 0.1, MaxCurrentA: 0.1}, "max_current_a: 0.1 A with shunt_ohms 0.1 is too fine a resolution"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tc.want)
		})
	}
	// The Validate bound matches periph's: just above it periph accepts.
	if c := ina219Cal(0.1, 0.21); c >= 1<<16 {
		t.Errorf("cal(0.1 Ω, 0.21 A) = %d, want < 65536", c)
	}
	if c := ina219Cal(0.002, 32.768); c != 20480 {
		t.Errorf("cal of the datasheet example = %d, want 20480", c)
	}
}

func TestTxTapCause(t *testing.T) {
	io := errors.New("sysfs-i2c: remote I/O error")
	sentinel := errors.New("failed to read power")
	tap := &txTap{}
	tap.lastErr = io
	err := tap.cause(sentinel)
	if !errors.Is(err, io) || !errors.Is(err, sentinel) || err.Error() != "failed to read power: sysfs-i2c: remote I/O error" {
		t.Errorf("cause = %v", err)
	}
	if tap.takeErr() != nil {
		t.Error("cause did not forget the error")
	}
	tap.lastErr = io
	if err := tap.cause(io); err != io {
		t.Errorf("cause(io) = %v, want it unchanged", err)
	}
	if got := roundSig(0.99989929, 6); got != 0.999899 {
		t.Errorf("roundSig = %v", got)
	}
}
