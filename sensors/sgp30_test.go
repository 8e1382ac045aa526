package sensors

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// SGP30 transactions (datasheet 6.3). Every command is written alone and
// its response read in a separate transaction after the command's time.
var (
	sgp30FeatureCmd = i2ctest.IO{Addr: 0x58, W: []byte{0x20, 0x2f}}
	sgp30Feature    = i2ctest.IO{Addr: 0x58, R: sensirionWords(0x0020)} // product type 0, version 0x20
	sgp30Init       = i2ctest.IO{Addr: 0x58, W: []byte{0x20, 0x03}}
	sgp30MeasureCmd = i2ctest.IO{Addr: 0x58, W: []byte{0x20, 0x08}}
)

// sgp30Measure is measure_iaq's response: eCO₂ ppm word, CRC, TVOC ppb
// word, CRC.
func sgp30Measure(eco2, tvoc uint16) i2ctest.IO {
	return i2ctest.IO{Addr: 0x58, R: sensirionWords(eco2, tvoc)}
}

// sgp30Fake replaces periph's NewI2C (which sleeps 20 s) with its command
// sequence: iaq_init, then measure_iaq whenever the test ticks. Its
// commands go through the sensor's txTap exactly as periph's do.
type sgp30Fake struct {
	release chan struct{} // closed to let iaq_init go
	inited  chan error    // iaq_init's result
	tick    chan struct{} // one measurement per value
	ticked  chan struct{} // ... done
}

func newSGP30Fake() *sgp30Fake {
	f := &sgp30Fake{release: make(chan struct{}), inited: make(chan error, 1), tick: make(chan struct{}), ticked: make(chan struct{})}
	close(f.release)
	return f
}

func (f *sgp30Fake) start(bus i2c.Bus, ctx context.Context) error {
	select {
	case <-f.release:
	case <-ctx.Done():
		// like periph, touch the bus once more after the (cut short) sleep
	}
	d := &i2c.Dev{Bus: bus, Addr: 0x58}
	err := d.Tx([]byte{0x20, 0x03}, nil)
	f.inited <- err
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.tick:
			if d.Tx([]byte{0x20, 0x08}, nil) == nil { // periph sleeps 12 ms here
				_ = d.Tx(nil, make([]byte, 6))
			}
			f.ticked <- struct{}{}
		}
	}
}

func (f *sgp30Fake) measure() {
	f.tick <- struct{}{}
	<-f.ticked
}

type sgp30Clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sgp30Clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *sgp30Clock) set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(d)
}

// useSGP30Fake returns options that run the fake with a clock and a bus
// lock of its own, so the tests can run in parallel.
func useSGP30Fake(f *sgp30Fake) (*SGP30Opts, *sgp30Clock) {
	c := &sgp30Clock{}
	c.set(0)
	lock := &sync.Mutex{}
	return &SGP30Opts{Bus: "1", start: f.start, now: c.now, busLock: func(string) sync.Locker { return lock }}, c
}

func TestSGP30Lifecycle(t *testing.T) {
	t.Parallel()
	const id = "t: sgp30 /dev/i2c-1 0x58: read: "
	ops := []i2ctest.IO{
		sgp30FeatureCmd, sgp30Feature, sgp30Init,
		sgp30MeasureCmd, sgp30Measure(400, 0), // at 5 s: the fixed init values
		sgp30MeasureCmd, sgp30Measure(450, 20), // at 21 s
		sgp30MeasureCmd, func() i2ctest.IO { m := sgp30Measure(460, 25); m.R[5] ^= 0xff; return m }(), // CRC error
		sgp30MeasureCmd, sgp30Measure(400, 0), // at 28 s: 400/0 is clean air now
		// Tx #12, measure_iaq, fails (faultBus)
	}
	pb := &i2ctest.Playback{Ops: ops}
	f := newSGP30Fake()
	o, clk := useSGP30Fake(f)
	s, err := open(t, i2cEnv(t, &faultBus{Playback: pb, failAt: 12}), "sgp30", o)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-f.inited; err != nil {
		t.Fatal(err)
	}
	read := func(at time.Duration) (Values, error) {
		clk.set(at)
		return s.Read(context.Background())
	}

	_, err = read(0)
	if !errors.Is(err, errWarmingUp) {
		t.Errorf("got %v, want errWarmingUp", err)
	}
	wantErr(t, err, id+"warming up: IAQ init, 20 s after open (20s left)")

	clk.set(5 * time.Second)
	f.measure()
	_, err = read(5 * time.Second)
	wantErr(t, err, id+"warming up: IAQ init, 20 s after open (15s left)")

	_, err = read(20 * time.Second)
	wantErr(t, err, id+"no measurement since open: warming up: fixed 400 ppm / 0 ppb during the 15 s after iaq_init")

	clk.set(21 * time.Second)
	f.measure()
	for _, at := range []time.Duration{21 * time.Second, 26 * time.Second} {
		v, err := read(at)
		if err != nil || len(v) != 2 || v[ECO2PPM] != 450 || v[TVOCPPB] != 20 {
			t.Errorf("at %s: got %v, %v; want 450 ppm, 20 ppb", at, v, err)
		}
	}
	_, err = read(27 * time.Second)
	wantErr(t, err, id+"no measurement for 6s")

	f.measure() // CRC error
	_, err = read(27 * time.Second)
	wantErr(t, err, id+"no measurement for 6s: measure_iaq: CRC mismatch (01 cc ")

	clk.set(28 * time.Second)
	f.measure()
	v, err := read(28 * time.Second)
	if err != nil || v[ECO2PPM] != 400 || v[TVOCPPB] != 0 {
		t.Errorf("got %v, %v; want 400 ppm, 0 ppb", v, err)
	}

	f.measure() // the bus fails
	_, err = read(40 * time.Second)
	wantErr(t, err, id+"no measurement for 12s: measure_iaq: sysfs-i2c: remote I/O error")

	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	<-s.(*sgp30Sensor).done // the background goroutine ended
	_, err = s.Read(context.Background())
	wantErr(t, err, id+"sensor is closed")
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSGP30CloseDuringInit: Close while periph still sleeps in NewI2C; its
// late iaq_init must not reach the bus.
func TestSGP30CloseDuringInit(t *testing.T) {
	t.Parallel()
	f := newSGP30Fake()
	f.release = make(chan struct{}) // never released: the sleep is cut short by Close
	o, _ := useSGP30Fake(f)
	pb := &i2ctest.Playback{Ops: []i2ctest.IO{sgp30FeatureCmd, sgp30Feature}}
	s, err := open(t, i2cEnv(t, pb), "sgp30", o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(context.Background())
	wantErr(t, err, "t: sgp30 /dev/i2c-1 0x58: read: warming up: IAQ init not sent yet")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-f.inited; !errors.Is(err, errSGP30Closed) {
		t.Errorf("iaq_init after Close: got %v, want errSGP30Closed", err)
	}
	<-s.(*sgp30Sensor).done
	if err := pb.Close(); err != nil { // no iaq_init on the bus
		t.Fatal(err)
	}
}

func TestSGP30InitFails(t *testing.T) {
	t.Parallel()
	f := newSGP30Fake()
	o, _ := useSGP30Fake(f)
	pb := &i2ctest.Playback{Ops: []i2ctest.IO{sgp30FeatureCmd, sgp30Feature}}
	s, err := open(t, i2cEnv(t, &faultBus{Playback: pb, failAt: 3}), "sgp30", o)
	if err != nil {
		t.Fatal(err)
	}
	<-f.inited
	<-s.(*sgp30Sensor).done // start returned the error
	_, err = s.Read(context.Background())
	wantErr(t, err, "t: sgp30 /dev/i2c-1 0x58: read: iaq_init: sysfs-i2c: remote I/O error")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSGP30OpenErrors(t *testing.T) {
	t.Parallel()
	const id = "t: sgp30 /dev/i2c-1 0x58: open: "
	const hint = "no device answered; check the wiring and the address (i2cdetect -y 1): "
	for _, tc := range []struct {
		name   string
		ops    []i2ctest.IO
		failAt int
		want   string
	}{
		{"no device", nil, 1, id + hint + "get_feature_set_version: sysfs-i2c: remote I/O error"},
		{"no response", []i2ctest.IO{sgp30FeatureCmd}, 2, id + hint + "get_feature_set_version: sysfs-i2c: remote I/O error"},
		{"crc", []i2ctest.IO{sgp30FeatureCmd, {Addr: 0x58, R: []byte{0x00, 0x20, 0x08}}}, 0,
			id + "get_feature_set_version: CRC mismatch (00 20 08, want CRC 0x07): not an SGP30, or a bus fault"},
		{"another chip", []i2ctest.IO{sgp30FeatureCmd, {Addr: 0x58, R: sensirionWords(0x1020)}}, 0,
			id + "feature set 0x1020 is not an SGP30's (product type 1, want 0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := func(i2c.Bus, context.Context) error { t.Error("started after a failed probe"); return nil }
			pb := &i2ctest.Playback{Ops: tc.ops}
			var bus I2CBus = pb
			if tc.failAt > 0 {
				bus = &faultBus{Playback: pb, failAt: tc.failAt}
			}
			s, err := open(t, i2cEnv(t, bus), "sgp30", &SGP30Opts{Bus: "1", start: start})
			if s != nil {
				t.Error("got a sensor with an error")
			}
			wantErr(t, err, tc.want)
			if err := pb.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := (&SGP30Opts{}).Validate(); err == nil || err.Error() != `bus: empty; set the I²C bus, e.g. "1" for /dev/i2c-1` {
		t.Errorf("Validate() = %v", err)
	}
}

// TestSGP30Periph runs periph's real NewI2C against a transcript. It takes
// 21 s (periph sleeps 20 s after iaq_init), so it only runs with
// SENSOR_AGENT_SLOW=1.
func TestSGP30Periph(t *testing.T) {
	if os.Getenv("SENSOR_AGENT_SLOW") == "" {
		t.Skip("takes 21 s; set SENSOR_AGENT_SLOW=1")
	}
	pb := &i2ctest.Playback{Ops: []i2ctest.IO{
		sgp30FeatureCmd, sgp30Feature, sgp30Init, sgp30MeasureCmd, sgp30Measure(450, 20),
	}, DontPanic: true}
	s, err := open(t, i2cEnv(t, pb), "sgp30", &SGP30Opts{Bus: "1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(context.Background())
	if !errors.Is(err, errWarmingUp) {
		t.Errorf("got %v, want errWarmingUp", err)
	}
	<-s.(*sgp30Sensor).done // NewI2C returned after its first measurement
	v, err := s.Read(context.Background())
	if err != nil || v[ECO2PPM] != 450 || v[TVOCPPB] != 20 {
		t.Errorf("got %v, %v; want 450 ppm, 20 ppb", v, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}
