package sensors

import (
	"context"
	"errors"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// ADS1x15 registers (datasheet 9.6): pointer 0 = conversion, 1 = config.
// Config bits: 15 OS (write 1: start a single conversion; read 1: idle),
// 14..12 MUX (100..111 = AINn against GND, 000 = 0-1 ... 011 = 2-3),
// 11..9 PGA (000 ±6.144 V, 001 ±4.096 ... 101 ±0.256), 8 MODE (1 single
// shot), 7..5 DR, 1..0 COMP_QUE (11 = comparator off).
func adsWrite(cfg uint16) i2ctest.IO {
	return i2ctest.IO{Addr: 0x48, W: []byte{0x01, byte(cfg >> 8), byte(cfg)}}
}

func adsConfig(cfg uint16) i2ctest.IO {
	return i2ctest.IO{Addr: 0x48, W: []byte{0x01}, R: []byte{byte(cfg >> 8), byte(cfg)}}
}

func adsResult(code int16) i2ctest.IO {
	return i2ctest.IO{Addr: 0x48, W: []byte{0x00}, R: []byte{byte(uint16(code) >> 8), byte(code)}}
}

// adsOpen is Open's config-register read: the power-on value 0x8583.
var adsOpen = adsConfig(0x8583)

func adsF(v float64) *float64 { return &v }

func TestADS1x15Read(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  ADS1x15Opts
		ops   []i2ctest.IO
		polls int // OS-bit polls that found the conversion running
		want  Values
	}{
		{
			// A 4-20 mA loop across 250 Ω gives 1..5 V: mA = V × 4.
			// max_voltage 5 → ±6.144 V (PGA 000), LSB = 6.144/32768 =
			// 187.5 µV; 3.0 V = code 16000 → 12 mA. Config: OS | MUX 100
			// (AIN0) | PGA 000 | single | DR 100 (128 SPS) | comparator off
			// = 0xc183.
			// A bridge on 2-3 at ±0.256 V (PGA 101), 8 SPS (DR 000): code
			// -1600 × 0.256/32768 = -12.5 mV. Config 0xbb03.
			name: "ads1115 loop and bridge",
			opts: ADS1x15Opts{Bus: "1", Address: 0x48, Chip: "ads1115", Channels: []ADS1x15Channel{
				{Channel: "0", Name: "loop_current_ma", MaxVoltage: 5, Scale: 4, Min: adsF(3.8), Max: adsF(20.5)},
				{Channel: "2-3", Name: "bridge_mv", MaxVoltage: 0.256, DataRate: 8, Scale: 1000},
			}},
			ops: []i2ctest.IO{adsOpen,
				adsWrite(0xc183), adsConfig(0x4183) /* converting */, adsConfig(0xc183), adsResult(16000),
				adsWrite(0xbb03), adsConfig(0xbb03), adsResult(-1600),
			},
			polls: 1,
			want:  Values{"loop_current_ma": 12, "bridge_mv": -12.5},
		},
		{
			// The same loop as a percentage: (mA - 4) / 16 × 100 = V × 25 - 25.
			name: "ads1115 loop percent",
			opts: ADS1x15Opts{Bus: "1", Address: 0x48, Chip: "ads1115", Channels: []ADS1x15Channel{
				{Channel: "0", Name: "tank_level_pct", MaxVoltage: 5, Scale: 25, Offset: -25, Min: adsF(-2), Max: adsF(102)},
			}},
			ops:  []i2ctest.IO{adsOpen, adsWrite(0xc183), adsConfig(0xc183), adsResult(16000)},
			want: Values{"tank_level_pct": 50},
		},
		{
			// ADS1015: 12-bit code left-aligned; ±4.096 V, LSB 2 mV: code
			// 1000 (0x3e80 in the register) = 2.0 V. Config: OS | AIN1
			// (MUX 101) | PGA 001 | single | DR 100 (1600 SPS) | comp off
			// = 0xd383. A capacitive soil probe reading 2.8 V dry and 1.2 V
			// wet: % = (2.8 - V) / 1.6 × 100 = 175 - 62.5 V → 50 %.
			name: "ads1015 soil moisture",
			opts: ADS1x15Opts{Bus: "1", Address: 0x48, Chip: "ads1015", Channels: []ADS1x15Channel{
				{Channel: "1", Name: "soil_moisture_pct", DataRate: 1600, Scale: -62.5, Offset: 175},
			}},
			ops:  []i2ctest.IO{adsOpen, adsWrite(0xd383), adsConfig(0xd383), adsResult(1000 << 4)},
			want: Values{"soil_moisture_pct": 50},
		},
		{
			name: "defaults: volts",
			opts: ADS1x15Opts{Bus: "1", Address: 0x48, Chip: "ads1115", Channels: []ADS1x15Channel{{Channel: "3", Name: "supply_v"}}},
			// AIN3 (MUX 111), ±4.096 V (PGA 001), 128 SPS: 0xf383.
			// 0x6000 = 24576 × 125 µV = 3.072 V.
			ops:  []i2ctest.IO{adsOpen, adsWrite(0xf383), adsConfig(0xf383), adsResult(0x6000)},
			want: Values{"supply_v": 3.072},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: tc.ops}
			opts := tc.opts
			s, err := open(t, i2cEnv(t, bus), "ads1x15", &opts)
			if err != nil {
				t.Fatal(err)
			}
			polls := 0
			s.(*ads1x15Sensor).sleep = func(time.Duration) { polls++ }
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
			if polls != tc.polls {
				t.Errorf("slept %d times between OS-bit polls, want %d", polls, tc.polls)
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
			wantErr(t, err, "t: "+tc.opts.Chip+" /dev/i2c-1 0x48: read: sensor is closed")
		})
	}
}

func TestADS1x15ReadErrors(t *testing.T) {
	const id = "t: ads1115 /dev/i2c-1 0x48: "
	loop := ADS1x15Opts{Bus: "1", Address: 0x48, Chip: "ads1115", Channels: []ADS1x15Channel{
		{Channel: "0", Name: "loop_current_ma", MaxVoltage: 5, Scale: 4, Min: adsF(3.8), Max: adsF(20.5)},
	}}
	for _, tc := range []struct {
		name string
		ops  []i2ctest.IO
		want string
	}{
		// 0 V on a 4-20 mA input: the loop is broken.
		{"below min", []i2ctest.IO{adsWrite(0xc183), adsConfig(0xc183), adsResult(0)},
			id + "read: implausible reading: loop_current_ma = 0 is outside 3.8..20.5 (a wiring or sensor fault; change the channel's min/max to change the range)"},
		{"saturated", []i2ctest.IO{adsWrite(0xc183), adsConfig(0xc183), adsResult(0x7fff)},
			id + "read loop_current_ma (channel 0): input at or beyond the ±6.144 V range (code 32767); raise max_voltage"},
		{"conversion never finishes", []i2ctest.IO{adsWrite(0xc183),
			adsConfig(0x4183), adsConfig(0x4183), adsConfig(0x4183), adsConfig(0x4183), adsConfig(0x4183)},
			id + "read loop_current_ma (channel 0): conversion not finished 40% after its nominal 7.8125ms (config 0x4183)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &i2ctest.Playback{Ops: append([]i2ctest.IO{adsOpen}, tc.ops...)}
			opts := loop
			s, err := open(t, i2cEnv(t, bus), "ads1x15", &opts)
			if err != nil {
				t.Fatal(err)
			}
			s.(*ads1x15Sensor).sleep = func(time.Duration) {}
			_, err = s.Read(context.Background())
			wantErr(t, err, tc.want)
			if err := bus.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		bus := &i2ctest.Playback{Ops: []i2ctest.IO{adsOpen}}
		opts := loop
		s, err := open(t, i2cEnv(t, bus), "ads1x15", &opts)
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

// TestADS1x15BusFault: periph's constructors never touch the bus, so Open
// reads the config register: a missing chip is an open error.
func TestADS1x15BusFault(t *testing.T) {
	ops := []i2ctest.IO{adsOpen, adsWrite(0xc183), adsConfig(0xc183), adsResult(16000)}
	const id = "t: ads1115 /dev/i2c-1 0x48: "
	const io = "sysfs-i2c: remote I/O error"
	want := []string{
		id + "open: no device answered; check the wiring and the address (i2cdetect -y 1): read config register: " + io,
		id + "read loop_current_ma (channel 0): " + io,
		id + "read loop_current_ma (channel 0): read config register: " + io,
		id + "read loop_current_ma (channel 0): " + io,
	}
	for failAt := 1; failAt <= len(ops); failAt++ {
		bus := &faultBus{Playback: &i2ctest.Playback{Ops: ops[:failAt-1]}, failAt: failAt}
		s, err := open(t, i2cEnv(t, bus), "ads1x15", &ADS1x15Opts{Bus: "1", Address: 0x48, Chip: "ads1115",
			Channels: []ADS1x15Channel{{Channel: "0", Name: "loop_current_ma", MaxVoltage: 5, Scale: 4}}})
		if failAt == 1 {
			if s != nil {
				t.Error("got a sensor with an error")
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

func TestADS1x15Validate(t *testing.T) {
	ch := func(c ADS1x15Channel) ADS1x15Opts {
		if c.Name == "" {
			c.Name = "voltage_v"
		}
		return ADS1x15Opts{Bus: "1", Address: 0x48, Chip: "ads1115", Channels: []ADS1x15Channel{c}}
	}
	for _, tc := range []struct {
		name string
		o    ADS1x15Opts
		want string
	}{
		{"one channel", ch(ADS1x15Channel{Channel: "0"}), ""},
		{"differential", ch(ADS1x15Channel{Channel: "1-3", MaxVoltage: 0.5, DataRate: 860}), ""},
		{"defaults have no channels", DefaultADS1x15Opts, "channels: empty; list the inputs to read"},
		{"bus", ADS1x15Opts{Address: 0x48, Chip: "ads1115"}, "bus: empty"},
		{"address", ADS1x15Opts{Bus: "1", Address: 0x4c, Chip: "ads1115"}, "address: 0x4c is not an ADS1x15 address; use 0x48..0x4b"},
		{"chip", ADS1x15Opts{Bus: "1", Address: 0x48, Chip: "ads1118"}, `chip: "ads1118" is not supported; use ads1115 (16 bits) or ads1015 (12 bits)`},
		{"channel", ch(ADS1x15Channel{Channel: "4"}), `channels[0].channel: "4" is not an input; use 0, 1, 2 or 3 (against GND) or "0-1", "0-3", "1-3", "2-3" (differential)`},
		{"differential not supported", ch(ADS1x15Channel{Channel: "1-2"}), `channels[0].channel: "1-2" is not an input`},
		{"no name", ADS1x15Opts{Bus: "1", Address: 0x48, Chip: "ads1115", Channels: []ADS1x15Channel{{Channel: "0"}}}, "channels[0].name: required"},
		{"no unit", ch(ADS1x15Channel{Channel: "0", Name: "moisture"}), `channels[0].name: "moisture" is not a value name; use lowercase snake_case ending in a unit`},
		{"bad name", ch(ADS1x15Channel{Channel: "0", Name: "Soil %"}), `channels[0].name: "Soil %" is not a value name`},
		{"max_voltage", ch(ADS1x15Channel{Channel: "0", MaxVoltage: 10}), "channels[0].max_voltage: 10 V is outside the ADC's ranges; use 0.256..6.144"},
		{"data_rate", ch(ADS1x15Channel{Channel: "0", DataRate: 100}), "channels[0].data_rate: 100 is not an ADS1115 rate; use one of 8, 16, 32, 64, 128, 250, 475, 860 samples/s"},
		{"ads1015 rate", ADS1x15Opts{Bus: "1", Address: 0x48, Chip: "ads1015", Channels: []ADS1x15Channel{{Channel: "0", Name: "voltage_v", DataRate: 860}}},
			"channels[0].data_rate: 860 is not an ADS1015 rate; use one of 128, 250, 490, 920, 1600, 2400, 3300"},
		{"min above max", ch(ADS1x15Channel{Channel: "0", Min: adsF(5), Max: adsF(1)}), "channels[0]: min 5 is above max 1"},
		{"duplicate name", ADS1x15Opts{Bus: "1", Address: 0x48, Chip: "ads1115", Channels: []ADS1x15Channel{
			{Channel: "0", Name: "voltage_v"}, {Channel: "1", Name: "voltage_v"}}}, `channels[1].name: "voltage_v" is also channels[0]'s name`},
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
	for _, tc := range []struct{ maxV, fsr float64 }{{0, 4.096}, {0.1, 0.256}, {0.256, 0.256}, {1, 1.024}, {3.3, 4.096}, {5, 6.144}} {
		c := ADS1x15Channel{MaxVoltage: tc.maxV}
		if got := c.fullScale(); got != tc.fsr {
			t.Errorf("max_voltage %g: range %g, want %g", tc.maxV, got, tc.fsr)
		}
	}
}
