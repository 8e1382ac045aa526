package sensors

import (
	"context"
	"errors"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// CCS811 transactions (datasheet, "Register overview"). STATUS bits:
// 7 FW_MODE (application running), 4 APP_VALID, 3 DATA_READY, 0 ERROR.
func ccs811Reg(addr uint16, reg byte, v ...byte) i2ctest.IO {
	return i2ctest.IO{Addr: addr, W: []byte{reg}, R: v}
}

// ccs811Start is a power-up: HW_ID 0x81; STATUS 0x10 (boot mode, valid
// application); APP_START; MEAS_MODE = mode << 4; STATUS 0x90
// (application running); MEAS_MODE read back.
func ccs811Start(addr uint16, mode byte) []i2ctest.IO {
	return []i2ctest.IO{
		ccs811Reg(addr, 0x20, 0x81),
		ccs811Reg(addr, 0x00, 0x10),
		{Addr: addr, W: []byte{0xf4}},
		{Addr: addr, W: []byte{0x01, mode << 4}},
		ccs811Reg(addr, 0x00, 0x90),
		ccs811Reg(addr, 0x01, mode<<4),
	}
}

// ccs811Result is ALG_RESULT_DATA (0x02): eCO₂ ppm (2 bytes, big-endian),
// TVOC ppb (2), STATUS, ERROR_ID, RAW_DATA (2: current µA in the top 6
// bits, voltage in the low 10, 1.65 V = 1023).
func ccs811Result(addr uint16, eco2, tvoc uint16, status, errID byte) i2ctest.IO {
	return ccs811Reg(addr, 0x02, byte(eco2>>8), byte(eco2), byte(tvoc>>8), byte(tvoc), status, errID, 0x0c, 0x8e)
}

func TestCCS811Read(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts CCS811Opts
		ops  []i2ctest.IO
		want Values
	}{
		{"power-up, mode 1", DefaultCCS811Opts,
			append(ccs811Start(0x5a, 1), ccs811Result(0x5a, 0x01f4, 0x000a, 0x98, 0)),
			Values{ECO2PPM: 500, TVOCPPB: 10}},
		{
			// An agent restart: the application already runs, so periph's
			// APP_START is a write to an invalid register (ERROR_ID bit 0),
			// which is expected and cleared by reading ERROR_ID.
			"restart, mode 3 at 0x5b", CCS811Opts{Bus: "1", Address: 0x5b, Mode: 3},
			[]i2ctest.IO{
				ccs811Reg(0x5b, 0x20, 0x81),
				ccs811Reg(0x5b, 0x00, 0x98),
				{Addr: 0x5b, W: []byte{0xf4}},
				{Addr: 0x5b, W: []byte{0x01, 0x30}},
				ccs811Reg(0x5b, 0x00, 0x99),
				ccs811Reg(0x5b, 0xe0, 0x01),
				ccs811Reg(0x5b, 0x01, 0x30),
				// 8192 ppm and 1187 ppb: the top of the datasheet's ranges.
				ccs811Result(0x5b, 8192, 1187, 0x98, 0),
			},
			Values{ECO2PPM: 8192, TVOCPPB: 1187}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tc.ops}
			opts := tc.opts
			s, err := open(t, i2cEnv(t, bus), "ccs811", &opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[ECO2PPM] != tc.want[ECO2PPM] || got[TVOCPPB] != tc.want[TVOCPPB] {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			for k, v := range got {
				if !ccs811Limits[k].Contains(v) {
					t.Errorf("%s = %v outside the limits", k, v)
				}
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
			wantErr(t, err, "t: ccs811 /dev/i2c-1 "+map[int]string{0x5a: "0x5a", 0x5b: "0x5b"}[tc.opts.Address]+": read: sensor is closed")
		})
	}
}

func TestCCS811ReadErrors(t *testing.T) {
	const id = "t: ccs811 /dev/i2c-1 0x5a: read: "
	for _, tc := range []struct {
		name   string
		result i2ctest.IO
		want   string
	}{
		{"data not ready", ccs811Result(0x5a, 0x01f4, 10, 0x90, 0),
			id + "no new sample since the last read (data not ready; drive mode 1 measures every second: read less often)"},
		{"sensor error", ccs811Result(0x5a, 0x01f4, 10, 0x99, 0x30),
			id + "sensor error: HEATER_FAULT (heater current out of range), HEATER_SUPPLY (heater voltage not applied correctly) (ERROR_ID 0x30)"},
		{"boot mode", ccs811Result(0x5a, 0, 0, 0x10, 0),
			id + "sensor is in boot mode (STATUS 0x10): it was reset or lost power"},
		// periph masks eCO₂ with 0x3fff and would report 500 ppm.
		{"corrupt eCO2", ccs811Result(0x5a, 0xc1f4, 10, 0x98, 0),
			id + "corrupt result (eCO₂ 0xc1f4, TVOC 0x000a have bits set beyond the sensor's range)"},
		{"corrupt TVOC", ccs811Result(0x5a, 0x01f4, 0xff0a, 0x98, 0),
			id + "corrupt result (eCO₂ 0x01f4, TVOC 0xff0a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: append(ccs811Start(0x5a, 1), tc.result)}
			s, err := open(t, i2cEnv(t, bus), "ccs811", &CCS811Opts{Bus: "1", Address: 0x5a, Mode: 1})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Read(context.Background())
			wantErr(t, err, tc.want)
			if err := bus.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		bus := &i2ctest.Playback{Ops: ccs811Start(0x5a, 1)}
		s, err := open(t, i2cEnv(t, bus), "ccs811", &CCS811Opts{Bus: "1", Address: 0x5a, Mode: 1})
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

func TestCCS811OpenErrors(t *testing.T) {
	const id = "t: ccs811 /dev/i2c-1 0x5a: open: "
	start := ccs811Start(0x5a, 1)
	with := func(i int, io i2ctest.IO, extra ...i2ctest.IO) []i2ctest.IO {
		ops := append([]i2ctest.IO{}, start[:i]...)
		return append(append(ops, io), extra...)
	}
	for _, tc := range []struct {
		name string
		ops  []i2ctest.IO
		want string
	}{
		{"another chip", with(0, ccs811Reg(0x5a, 0x20, 0x42)), id + "HW_ID is 0x42, not a CCS811's 0x81: is another chip at this address?"},
		{"no firmware", with(1, ccs811Reg(0x5a, 0x00, 0x00)), id + "no valid application firmware on the sensor (STATUS 0x00)"},
		{"stays in boot mode", with(4, ccs811Reg(0x5a, 0x00, 0x10)), id + "still in boot mode after APP_START (STATUS 0x10)"},
		{"error at start", with(4, ccs811Reg(0x5a, 0x00, 0x91), ccs811Reg(0x5a, 0xe0, 0x04)),
			id + "sensor error at start: MEASMODE_INVALID (unsupported drive mode) (ERROR_ID 0x04)"},
		{"mode not taken", with(5, ccs811Reg(0x5a, 0x01, 0x00)), id + "MEAS_MODE reads drive mode 0 after writing 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tc.ops}
			s, err := open(t, i2cEnv(t, bus), "ccs811", &CCS811Opts{Bus: "1", Address: 0x5a, Mode: 1})
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

func TestCCS811BusFault(t *testing.T) {
	ops := append(ccs811Start(0x5a, 1), ccs811Result(0x5a, 0x01f4, 10, 0x98, 0))
	const id = "t: ccs811 /dev/i2c-1 0x5a: "
	const io = "sysfs-i2c: remote I/O error"
	const hint = "open: no device answered; check the wiring and the address (i2cdetect -y 1): "
	want := []string{
		id + hint + "read HW_ID: " + io,
		id + hint + "read STATUS: " + io,
		id + hint + "error transitioning from boot do app mode: " + io, // periph's words
		id + hint + "error setting measurement mode: " + io,
		id + hint + "read STATUS: " + io,
		id + hint + "read MEAS_MODE: " + io,
		id + "read: " + io,
	}
	for failAt := 1; failAt <= len(ops); failAt++ {
		bus := &faultBus{Playback: &i2ctest.Playback{Ops: ops[:failAt-1]}, failAt: failAt}
		s, err := open(t, i2cEnv(t, bus), "ccs811", &CCS811Opts{Bus: "1", Address: 0x5a, Mode: 1})
		if failAt < len(ops) {
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

func TestCCS811Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    CCS811Opts
		want string
	}{
		{"defaults", DefaultCCS811Opts, ""},
		{"0x5b mode 2", CCS811Opts{Bus: "1", Address: 0x5b, Mode: 2}, ""},
		{"bus", CCS811Opts{Address: 0x5a, Mode: 1}, "bus: empty"},
		{"address", CCS811Opts{Bus: "1", Address: 0x5c, Mode: 1}, "address: 0x5c is not a CCS811 address; use 0x5a (ADDR low) or 0x5b (ADDR high)"},
		{"idle", CCS811Opts{Bus: "1", Address: 0x5a, Mode: 0}, "mode: 0 is idle (no measurements); use 1"},
		{"raw only", CCS811Opts{Bus: "1", Address: 0x5a, Mode: 4}, "mode: 4 updates only the raw data, never eco2/tvoc"},
		{"unknown", CCS811Opts{Bus: "1", Address: 0x5a, Mode: 7}, "mode: 7 is not a CCS811 drive mode"},
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
	if got := ccs811ErrorText(0xc1); got != "WRITE_REG_INVALID (write to an invalid register), unknown bits 0xc0" {
		t.Errorf("ccs811ErrorText(0xc1) = %q", got)
	}
}
