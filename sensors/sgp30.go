package sensors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/sgp30"
)

// SGP30Opts configures the sgp30 driver (Sensirion SGP30 eCO₂/TVOC; fixed
// address 0x58).
type SGP30Opts struct {
	// Bus is the I²C bus: "1", "I2C1" or "/dev/i2c-1".
	Bus string `yaml:"bus"`

	// Seams for tests; nil means the real thing.

	// start runs periph's driver on bus until ctx is done: NewI2C sends
	// iaq_init, sleeps 20 s, measures, and leaves a goroutine measuring
	// every second until ctx is done. Tests use the same command sequence
	// without the sleep.
	start func(bus i2c.Bus, ctx context.Context) error
	// now is the clock.
	now func() time.Time
	// busLock returns the agent's lock for a bus (see Open), so the
	// background measurements never interleave with other sensors'
	// transactions on a shared bus or multiplexer.
	busLock func(bus string) sync.Locker
}

// DefaultSGP30Opts are the defaults NewOpts returns for sgp30.
var DefaultSGP30Opts = SGP30Opts{Bus: "1"}

// target implements i2cOptions.
func (o *SGP30Opts) target() (string, int) { return o.Bus, sgp30Addr }

// Validate implements Validator.
func (o *SGP30Opts) Validate() error {
	if o.Bus == "" {
		return errNoBus
	}
	return nil
}

// sgp30Chip: fixed at 0x58; identifying it needs a command (a write), which
// scan does not send.
var sgp30Chip = &I2CChip{Addrs: []uint16{sgp30Addr}, What: "probably a Sensirion SGP30 (address 0x58)"}

// sgp30Start, sgp30BusLock: the defaults of SGP30Opts' start and busLock.
func sgp30Start(bus i2c.Bus, ctx context.Context) error {
	_, err := sgp30.NewI2C(bus, ctx)
	return err
}

func sgp30BusLock(bus string) sync.Locker { return busLock(canonicalBus(bus)) }

// Value names of the sgp30 and ccs811 drivers.
const (
	ECO2PPM = "eco2_ppm"
	TVOCPPB = "tvoc_ppb"
)

// sgp30Limits are the datasheet's output ranges.
var sgp30Limits = map[string]Range{
	ECO2PPM: {Min: 400, Max: 60000},
	TVOCPPB: {Min: 0, Max: 60000},
}

const (
	sgp30Addr = 0x58
	// sgp30InitTime is how long periph's NewI2C sleeps after iaq_init
	// before its first measurement.
	sgp30InitTime = 20 * time.Second
	// sgp30FixedTime: for 15 s after iaq_init, measure_iaq returns the
	// fixed values 400 ppm / 0 ppb (datasheet 3.3).
	sgp30FixedTime = 15 * time.Second
	// sgp30Stale is the age after which the last measurement is no longer
	// served: periph measures every second.
	sgp30Stale = 5 * time.Second
)

var errSGP30Closed = errors.New("sensor is closed")

func init() {
	Register(Driver{
		Name:    "sgp30",
		Doc:     "Sensirion SGP30 air quality on I²C (0x58): eco2_ppm, tvoc_ppb; no values for 20 s after open (IAQ init)",
		NewOpts: defaults(DefaultSGP30Opts),
		Open:    openSGP30,
		Limits:  sgp30Limits,
		I2C:     sgp30Chip,
	})
}

// sgp30Sensor runs periph's sgp30 driver in the background and serves its
// latest measurement.
//
// periph's NewI2C blocks 20 s (IAQ init) and then measures every second
// in a goroutine bound to the context it was given; AirQuality returns
// cached values that start at 400/0 and never go stale, errors are only
// logged (log.Print) and the CRCs are never checked. So Open only checks
// the chip (get_feature_set_version, CRC-checked) and starts NewI2C in a
// goroutine with a context Close cancels; periph's traffic passes through
// a txTap, which records iaq_init, checks each measurement's CRCs and
// keeps the last good one with its time. Read serves that, or says why
// not: warming up, an I/O or CRC error, or no measurement for 5 s.
type sgp30Sensor struct {
	id     string // "office: sgp30 /dev/i2c-1 0x58", prefix of every error
	now    func() time.Time
	cancel context.CancelFunc
	done   chan struct{} // closed when the background goroutine returns

	mu      sync.Mutex // guards the fields below
	closed  bool
	initAt  time.Time // when iaq_init was acknowledged
	initErr error     // iaq_init or NewI2C failed
	pending bool      // measure_iaq sent, its response is the next read
	measAt  time.Time // last good measurement
	eco2    uint16
	tvoc    uint16
	lastErr error // latest failed or rejected measurement
}

var _ Sensor = (*sgp30Sensor)(nil)

func openSGP30(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, c, err := openI2COpts[SGP30Opts](ctx, env, "sgp30", opts)
	if err != nil {
		return nil, err
	}
	if err := sgp30Probe(ctx, c.bus); err != nil {
		return nil, c.openErr(err)
	}
	start, now, lock := or(o.start, sgp30Start), or(o.now, time.Now), or(o.busLock, sgp30BusLock)
	bg, cancel := context.WithCancel(context.Background())
	s := &sgp30Sensor{id: c.id, now: now, cancel: cancel, done: make(chan struct{})}
	tap := &txTap{Bus: c.bus, lock: lock(o.Bus), before: s.before, after: s.observe}
	go func() {
		defer close(s.done)
		// Returns after the first measurement (periph) or when bg is done.
		err := start(tap, bg)
		if err != nil && bg.Err() == nil {
			s.mu.Lock()
			if s.initErr == nil {
				s.initErr = err
			}
			s.mu.Unlock()
		}
	}()
	return s, nil
}

// sgp30Probe reads the feature set (0x202f): the SGP30's product type is 0
// (bits 15..12). A missing chip fails here, at open, rather than in the
// background 20 s later.
func sgp30Probe(ctx context.Context, bus i2c.Bus) error {
	d := &i2c.Dev{Bus: bus, Addr: sgp30Addr}
	if err := d.Tx([]byte{0x20, 0x2f}, nil); err != nil {
		return fmt.Errorf("get_feature_set_version: %w", err)
	}
	if err := waitCtx(ctx, 10*time.Millisecond); err != nil { // periph's duration for it
		return err
	}
	r := make([]byte, 3)
	if err := d.Tx(nil, r); err != nil {
		return fmt.Errorf("get_feature_set_version: %w", err)
	}
	if c := sensirionCRC8(r[:2]); c != r[2] {
		return fmt.Errorf("get_feature_set_version: CRC mismatch (% x, want CRC %#02x): not an SGP30, or a bus fault", r, c)
	}
	if v := uint16(r[0])<<8 | uint16(r[1]); v>>12 != 0 {
		return fmt.Errorf("feature set %#04x is not an SGP30's (product type %d, want 0)", v, v>>12)
	}
	return nil
}

// before refuses periph's transactions once the sensor is closed: its
// goroutine may still be in NewI2C's 20 s sleep when Close runs.
func (s *sgp30Sensor) before(addr uint16, w, r []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSGP30Closed
	}
	return nil
}

// observe follows periph's command sequence: iaq_init (0x2003);
// measure_iaq (0x2008) then a 6-byte read: eCO₂ word, CRC, TVOC word, CRC.
func (s *sgp30Sensor) observe(addr uint16, w, r []byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || addr != sgp30Addr {
		return
	}
	switch {
	case len(w) == 2 && w[0] == 0x20 && w[1] == 0x03:
		if err != nil {
			s.initErr = fmt.Errorf("iaq_init: %w", err)
		} else {
			s.initAt = s.now()
		}
	case len(w) == 2 && w[0] == 0x20 && w[1] == 0x08:
		s.pending = err == nil
		if err != nil {
			s.lastErr = fmt.Errorf("measure_iaq: %w", err)
		}
	case len(w) == 0 && len(r) == 6 && s.pending:
		s.pending = false
		if err != nil {
			s.lastErr = fmt.Errorf("measure_iaq: %w", err)
			return
		}
		if c1, c2 := sensirionCRC8(r[0:2]), sensirionCRC8(r[3:5]); c1 != r[2] || c2 != r[5] {
			s.lastErr = fmt.Errorf("measure_iaq: CRC mismatch (% x)", r)
			return
		}
		eco2, tvoc := uint16(r[0])<<8|uint16(r[1]), uint16(r[3])<<8|uint16(r[4])
		at := s.now()
		if eco2 == 400 && tvoc == 0 && at.Sub(s.initAt) < sgp30FixedTime {
			s.lastErr = fmt.Errorf("%w: fixed 400 ppm / 0 ppb during the 15 s after iaq_init", errWarmingUp)
			return
		}
		s.measAt, s.eco2, s.tvoc, s.lastErr = at, eco2, tvoc, nil
	}
}

// Read returns the latest measurement. It does no I/O.
func (s *sgp30Sensor) Read(ctx context.Context) (Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	case s.initErr != nil:
		return nil, fmt.Errorf("%s: read: %w", s.id, s.initErr)
	case s.initAt.IsZero():
		return nil, fmt.Errorf("%s: read: %w: IAQ init not sent yet (values come 20 s after open)", s.id, errWarmingUp)
	}
	now := s.now()
	if s.measAt.IsZero() {
		if left := s.initAt.Add(sgp30InitTime).Sub(now); left > 0 {
			return nil, fmt.Errorf("%s: read: %w: IAQ init, 20 s after open (%s left)", s.id, errWarmingUp, left.Round(time.Second))
		}
		if s.lastErr != nil {
			return nil, fmt.Errorf("%s: read: no measurement since open: %w", s.id, s.lastErr)
		}
		return nil, fmt.Errorf("%s: read: no measurement since open", s.id)
	}
	if age := now.Sub(s.measAt); age > sgp30Stale {
		if s.lastErr != nil {
			return nil, fmt.Errorf("%s: read: no measurement for %s: %w", s.id, age.Round(time.Second), s.lastErr)
		}
		return nil, fmt.Errorf("%s: read: no measurement for %s", s.id, age.Round(time.Second))
	}
	return Values{ECO2PPM: float64(s.eco2), TVOCPPB: float64(s.tvoc)}, nil
}

// Close stops the background measurements. It does not wait for periph's
// goroutine: if it is still in NewI2C's 20 s sleep it ends after it,
// without touching the bus. The chip keeps its state until power-off;
// the next Open sends iaq_init again (20 s warm-up, baseline restarts).
func (s *sgp30Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.cancel()
	}
	return nil
}
