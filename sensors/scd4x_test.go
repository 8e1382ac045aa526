package sensors

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// Sensirion words: 16 bits big-endian, then their CRC-8.
func sensirionWords(ws ...uint16) []byte {
	var b []byte
	for _, w := range ws {
		b = append(b, byte(w>>8), byte(w))
		b = append(b, sensirionCRC8(b[len(b)-2:]))
	}
	return b
}

// TestSensirionCRC8 checks the CRC against the datasheets' examples.
func TestSensirionCRC8(t *testing.T) {
	for _, tc := range []struct {
		word []byte
		crc  byte
	}{
		{[]byte{0xbe, 0xef}, 0x92}, // SCD4x 3.11 and SGP30 6.6 "CRC of 0xBEEF is 0x92"
		{[]byte{0x01, 0xf4}, 0x33}, // SCD4x read_measurement example: CO2 500 ppm
		{[]byte{0x66, 0x67}, 0xa2}, // ... temperature 25 °C
		{[]byte{0x5e, 0xb9}, 0x3c}, // ... humidity 37 %RH
	} {
		if got := sensirionCRC8(tc.word); got != tc.crc {
			t.Errorf("crc(% x) = %#x, want %#x", tc.word, got, tc.crc)
		}
	}
}

// SCD4x commands (datasheet section 3), all at 0x62.
var (
	scd4xWake     = i2ctest.IO{Addr: 0x62, W: []byte{0x36, 0xf6}}
	scd4xStop     = i2ctest.IO{Addr: 0x62, W: []byte{0x3f, 0x86}}
	scd4xStart    = i2ctest.IO{Addr: 0x62, W: []byte{0x21, 0xb1}}
	scd4xReady    = i2ctest.IO{Addr: 0x62, W: []byte{0xe4, 0xb8}, R: sensirionWords(0x8006)} // low 11 bits set: ready
	scd4xNotReady = i2ctest.IO{Addr: 0x62, W: []byte{0xe4, 0xb8}, R: sensirionWords(0x8000)} // low 11 bits 0
)

// scd4xMeasure is read_measurement (0xec05): CO2 word, T word, RH word.
// CO2 = word ppm; T = -45 + 175 × word / 65535 °C; RH = 100 × word / 65535 %.
func scd4xMeasure(co2, t, rh uint16) i2ctest.IO {
	return i2ctest.IO{Addr: 0x62, W: []byte{0xec, 0x05}, R: sensirionWords(co2, t, rh)}
}

// scd4xClock is a fake clock: wait advances it instead of sleeping.
type scd4xClock struct {
	mu    sync.Mutex
	t     time.Time
	waits int
}

func (c *scd4xClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *scd4xClock) wait(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits++
	c.t = c.t.Add(d)
	return ctx.Err()
}

func openSCD4xFake(t *testing.T, bus I2CBus) (*scd4xSensor, *scd4xClock) {
	t.Helper()
	s, err := open(t, i2cEnv(t, bus), "scd4x", &SCD4xOpts{Bus: "1"})
	if err != nil {
		t.Fatal(err)
	}
	c := &scd4xClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ss := s.(*scd4xSensor)
	// Opened a minute ago: past the first measurement's 5 s.
	ss.now, ss.wait, ss.opened = c.now, c.wait, c.t.Add(-time.Minute)
	return ss, c
}

func TestSCD4xRead(t *testing.T) {
	t.Parallel() // periph sleeps 50 ms to open and 550 ms to close
	for _, tc := range []struct {
		name   string
		failAt int // the Tx that is not acknowledged; 0 = none
		ops    []i2ctest.IO
		waits  int
		want   Values
		close  bool // Close (550 ms in periph) and check that Read then fails
	}{
		{
			// The SCD4x never acknowledges wake_up (datasheet 3.10.6), so
			// periph stops a running measurement, sleeps 550 ms, starts.
			name: "datasheet example, wake_up not acknowledged", failAt: 1,
			ops: []i2ctest.IO{scd4xStop, scd4xStart, scd4xReady, scd4xReady,
				// 0x01f4 = 500 ppm; -45 + 175 × 0x6667/65535 = 25.00 °C;
				// 100 × 0x5eb9/65535 = 37.00 %RH (datasheet 3.6.2).
				scd4xMeasure(0x01f4, 0x6667, 0x5eb9), scd4xStop},
			want:  Values{CO2PPM: 500, TemperatureC: 25, HumidityPct: 37},
			close: true,
		},
		{
			name: "data not ready twice",
			ops: []i2ctest.IO{scd4xWake, scd4xStart, scd4xNotReady, scd4xNotReady, scd4xReady, scd4xReady,
				scd4xMeasure(0x01f4, 0x6667, 0x5eb9)},
			waits: 2,
			want:  Values{CO2PPM: 500, TemperatureC: 25, HumidityPct: 37},
		},
		{
			name: "cold and saturated",
			ops: []i2ctest.IO{scd4xWake, scd4xStart, scd4xReady, scd4xReady,
				// 3000 ppm; -45 + 175 × 14979/65535 = -5.00 °C; 100 × 65535/65535 = 100 %RH.
				scd4xMeasure(3000, 14979, 0xffff)},
			want: Values{CO2PPM: 3000, TemperatureC: -5, HumidityPct: 100},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pb := &i2ctest.Playback{Ops: tc.ops}
			var bus I2CBus = pb
			if tc.failAt > 0 {
				bus = &faultBus{Playback: pb, failAt: tc.failAt}
			}
			s, clk := openSCD4xFake(t, bus)
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
			if clk.waits != tc.waits {
				t.Errorf("waited %d times, want %d", clk.waits, tc.waits)
			}
			if tc.close {
				for range 2 { // idempotent
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
				}
				_, err = s.Read(context.Background())
				wantErr(t, err, "t: scd4x /dev/i2c-1 0x62: read: sensor is closed")
			}
			if err := pb.Close(); err != nil { // all ops consumed
				t.Fatal(err)
			}
		})
	}
}

// TestSCD4xNoData: Read polls data-ready for up to 1.5 s (on the fake
// clock), then says why there is nothing: warming up in the first 5 s after
// open (at once when the first measurement cannot come within 1.5 s), or
// reads too frequent.
func TestSCD4xNoData(t *testing.T) {
	t.Parallel()
	ops := []i2ctest.IO{scd4xWake, scd4xStart}
	for range 1 + 7 + 7 { // at 0 s; then 4 s and 60 s: polls at +0, +0.25 .. +1.5 s
		ops = append(ops, scd4xNotReady)
	}
	pb := &i2ctest.Playback{Ops: ops}
	s, clk := openSCD4xFake(t, pb)
	opened := clk.t
	s.opened = opened

	_, err := s.Read(context.Background())
	if !errors.Is(err, errWarmingUp) {
		t.Errorf("got %v, want errWarmingUp", err)
	}
	wantErr(t, err, "t: scd4x /dev/i2c-1 0x62: read: warming up: the first measurement is ready 5 s after open")
	if clk.waits != 0 {
		t.Errorf("waited %d times right after open, want 0", clk.waits)
	}

	clk.t = opened.Add(4 * time.Second)
	_, err = s.Read(context.Background())
	if !errors.Is(err, errWarmingUp) {
		t.Errorf("got %v, want errWarmingUp", err)
	}
	if clk.waits != 6 {
		t.Errorf("waited %d times 4 s after open, want 6", clk.waits)
	}

	clk.t = clk.t.Add(time.Minute)
	_, err = s.Read(context.Background())
	if errors.Is(err, errWarmingUp) {
		t.Error("a minute after open is not warming up")
	}
	wantErr(t, err, "t: scd4x /dev/i2c-1 0x62: read: no new measurement within 1.5s: the SCD4x measures every 5 s, use an interval of at least 5s")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Read(ctx) // no I/O: the playback would panic
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

// scd4xDeadBus acknowledges nothing, like an empty address.
type scd4xDeadBus struct{ i2ctest.Playback }

func (*scd4xDeadBus) Tx(uint16, []byte, []byte) error {
	return errors.New("sysfs-i2c: remote I/O error")
}

func TestSCD4xBusFault(t *testing.T) {
	t.Parallel()
	const id = "t: scd4x /dev/i2c-1 0x62: "
	measure := scd4xMeasure(0x01f4, 0x6667, 0x5eb9)
	for _, tc := range []struct {
		name     string
		failAt   int
		ops      []i2ctest.IO // without the failing Tx
		openErr  string
		readErr  string // "" = the read succeeds
		closeErr string // "" = not closed (periph sleeps 550 ms in Halt)
	}{
		{name: "start not acknowledged", failAt: 2, ops: []i2ctest.IO{scd4xWake},
			openErr: id + "open: no device answered; check the wiring and the address (i2cdetect -y 1): scd4x cmd 0x21b1: sysfs-i2c: remote I/O error"},
		{name: "data ready status", failAt: 3, ops: []i2ctest.IO{scd4xWake, scd4xStart},
			readErr: id + "read: get_data_ready_status: sysfs-i2c: remote I/O error"},
		{name: "read_measurement", failAt: 5, ops: []i2ctest.IO{scd4xWake, scd4xStart, scd4xReady, scd4xReady},
			readErr: id + "read: scd4x cmd 0xec05: sysfs-i2c: remote I/O error"},
		{
			// periph swallows errors of its own data-ready poll and tries
			// again after 1 s (this case takes that second).
			name: "periph's data ready poll", failAt: 4,
			ops: []i2ctest.IO{scd4xWake, scd4xStart, scd4xReady, scd4xReady, measure},
		},
		{name: "stop on close", failAt: 6, ops: []i2ctest.IO{scd4xWake, scd4xStart, scd4xReady, scd4xReady, measure},
			closeErr: id + "close: scd4x cmd 0x3f86: sysfs-i2c: remote I/O error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pb := &i2ctest.Playback{Ops: tc.ops}
			s, err := open(t, i2cEnv(t, &faultBus{Playback: pb, failAt: tc.failAt}), "scd4x", &SCD4xOpts{Bus: "1"})
			if tc.openErr != "" {
				if s != nil {
					t.Error("got a sensor with an error")
				}
				wantErr(t, err, tc.openErr)
			} else {
				if err != nil {
					t.Fatal(err)
				}
				v, err := s.Read(context.Background())
				if tc.readErr != "" {
					wantErr(t, err, tc.readErr)
				} else if err != nil || v[CO2PPM] != 500 {
					t.Errorf("got %v, %v; want 500 ppm", v, err)
				}
				if tc.closeErr != "" {
					wantErr(t, s.Close(), tc.closeErr)
				}
			}
			if err := pb.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("no device", func(t *testing.T) {
		t.Parallel()
		_, err := open(t, i2cEnv(t, &scd4xDeadBus{}), "scd4x", &SCD4xOpts{Bus: "1"})
		wantErr(t, err, id+"open: no device answered; check the wiring and the address (i2cdetect -y 1): scd4x cmd 0x21b1: sysfs-i2c: remote I/O error")
	})
	t.Run("crc", func(t *testing.T) {
		t.Parallel()
		bad := scd4xMeasure(0x01f4, 0x6667, 0x5eb9)
		bad.R[8] ^= 1
		badReady := scd4xReady
		badReady.R = []byte{0x80, 0x06, 0x05}
		pb := &i2ctest.Playback{Ops: []i2ctest.IO{scd4xWake, scd4xStart, badReady, scd4xReady, scd4xReady, bad}}
		s, _ := openSCD4xFake(t, pb)
		_, err := s.Read(context.Background())
		wantErr(t, err, id+"read: get_data_ready_status: CRC mismatch (80 06 05, want CRC 0x04)")
		_, err = s.Read(context.Background())
		wantErr(t, err, id+"read: scd4x cmd 0xec05: invalid crc")
		if err := pb.Close(); err != nil {
			t.Error(err)
		}
	})
}

// scd4xSim answers any number of reads: data always ready, 500 ppm.
type scd4xSim struct {
	i2ctest.Playback
	mu sync.Mutex
	tx int
}

func (b *scd4xSim) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	b.tx++
	b.mu.Unlock()
	switch {
	case len(w) == 2 && w[0] == 0xe4:
		copy(r, sensirionWords(0x8006))
	case len(w) == 2 && w[0] == 0xec:
		copy(r, sensirionWords(0x01f4, 0x6667, 0x5eb9))
	}
	return nil
}

// TestSCD4xReadCloseRace: periph touches d.sensing without its lock
// (periph/devices#84); Read and Close running together must not race.
func TestSCD4xReadCloseRace(t *testing.T) {
	t.Parallel()
	s, _ := openSCD4xFake(t, &scd4xSim{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := s.Read(context.Background()); err != nil && err.Error() != "t: scd4x /dev/i2c-1 0x62: read: sensor is closed" {
					t.Error(err)
				}
			}
		}()
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	wg.Wait()
}

// TestSCD4xLimits: the temperature words 0 and 0xffff (a dead or
// disconnected sensor) decode to -45 and 130 °C, both outside the limits.
func TestSCD4xLimits(t *testing.T) {
	for _, tc := range []struct {
		word uint16
		c    float64
	}{{0, -45}, {0xffff, 130}, {0x6667, 25}} {
		c := -45 + 175*float64(tc.word)/65535
		if !near(c, tc.c) {
			t.Errorf("word %#x: %v °C, want %v", tc.word, c, tc.c)
		}
	}
	for k, r := range scd4xLimits {
		if r.Min >= r.Max {
			t.Errorf("%s: empty range %v", k, r)
		}
	}
	if scd4xLimits[TemperatureC].Contains(130) || scd4xLimits[TemperatureC].Contains(-45) {
		t.Error("raw 0xffff / 0 temperatures must be outside the limits")
	}
}

func TestSCD4xOptions(t *testing.T) {
	if err := (&SCD4xOpts{Bus: "1"}).Validate(); err != nil {
		t.Error(err)
	}
	wantErr(t, (&SCD4xOpts{}).Validate(), `bus: empty; set the I²C bus, e.g. "1" for /dev/i2c-1`)
	env := testEnv(t) // its I2C fails the test if called
	_, err := open(t, env, "scd4x", &SCD4xOpts{})
	wantErr(t, err, "t: scd4x: bus: empty")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, _ := Lookup("scd4x")
	_, err = d.Open(ctx, env, &SCD4xOpts{Bus: "1"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("open with a cancelled context: %v", err)
	}
}
