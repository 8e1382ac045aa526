package sensors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/scd4x"
)

// SCD4xOpts configures the scd4x driver (Sensirion SCD40/SCD41 CO₂,
// temperature and humidity; fixed address 0x62).
type SCD4xOpts struct {
	// Bus is the I²C bus: "1", "I2C1" or "/dev/i2c-1".
	Bus string `yaml:"bus"`
}

// DefaultSCD4xOpts are the defaults NewOpts returns for scd4x.
var DefaultSCD4xOpts = SCD4xOpts{Bus: "1"}

// target implements i2cOptions.
func (o *SCD4xOpts) target() (string, int) { return o.Bus, int(scd4x.SensorAddress) }

// Validate implements Validator.
func (o *SCD4xOpts) Validate() error {
	if o.Bus == "" {
		return errNoBus
	}
	return nil
}

// scd4xChip: fixed at 0x62; reading its serial number needs a command.
var scd4xChip = &I2CChip{Addrs: []uint16{scd4x.SensorAddress}, What: "probably a Sensirion SCD40/41 (address 0x62)"}

// CO2PPM is the CO₂ value name of the scd4x driver.
const CO2PPM = "co2_ppm"

// scd4xLimits are the datasheet's ranges: CO₂ output 0..40000 ppm, the
// specified operating range -10..60 °C, 0..100 %RH.
var scd4xLimits = map[string]Range{
	CO2PPM:       {Min: 0, Max: 40000},
	TemperatureC: {Min: -10, Max: 60},
	HumidityPct:  {Min: 0, Max: 100},
}

const (
	// scd4xPeriod is the periodic measurement interval: a new value every
	// 5 s, the first 5 s after the start command.
	scd4xPeriod = 5 * time.Second
	// scd4xReadWait is how long a Read polls for data-ready. Reads at the
	// measurement interval may land just before a measurement is done;
	// waiting longer would hold the bus (the agent locks it per read).
	scd4xReadWait = 1500 * time.Millisecond
	scd4xPoll     = 250 * time.Millisecond
)

func init() {
	Register(Driver{
		Name:    "scd4x",
		Doc:     "Sensirion SCD40/SCD41 CO₂ on I²C (0x62): co2_ppm, temperature_c, humidity_pct; measures every 5 s, use an interval of at least 5s",
		NewOpts: defaults(DefaultSCD4xOpts),
		Open:    openSCD4x,
		Limits:  scd4xLimits,
		I2C:     scd4xChip,
	})
}

// scd4xSensor wraps periph's scd4x.Dev in periodic measurement mode.
//
// periph touches d.sensing without its lock (periph/devices#84): every
// call into the Dev is made under s.mu, and SenseContinuous is never used,
// so there is no second goroutine.
type scd4xSensor struct {
	id     string // "office: scd4x /dev/i2c-1 0x62", prefix of every error
	raw    *i2c.Dev
	opened time.Time
	// now and wait are the clock; tests replace them.
	now  func() time.Time
	wait func(ctx context.Context, d time.Duration) error

	mu  sync.Mutex
	dev *scd4x.Dev
}

var _ Sensor = (*scd4xSensor)(nil)

func openSCD4x(ctx context.Context, env Env, opts any) (Sensor, error) {
	_, c, err := openI2COpts[SCD4xOpts](ctx, env, "scd4x", opts)
	if err != nil {
		return nil, err
	}
	// NewI2C sends wake_up, which the SCD4x never acknowledges (datasheet),
	// so periph then sends stop_periodic_measurement and sleeps 550 ms;
	// then start_periodic_measurement after 50 ms. It returns a non-nil
	// *Dev together with its error: the error is checked first and that
	// Dev never used (start was not acknowledged, nothing to stop).
	dev, err := scd4x.NewI2C(c.bus, c.addr)
	if err != nil {
		return nil, c.openErr(err)
	}
	return &scd4xSensor{
		id:     c.id,
		raw:    c.dev(),
		opened: time.Now(),
		now:    time.Now,
		wait:   waitCtx,
		dev:    dev,
	}, nil
}

// Read returns the measurement the sensor made since the last Read.
//
// periph's Sense polls get_data_ready_status once a second for up to 6 s,
// swallowing bus errors and ignoring any context. Read polls it first
// itself (every 250 ms, up to 1.5 s, honouring ctx), so the bus error is
// reported and Sense finds the data ready at its first poll. Sense's other
// slow path (start the measurement and sleep 5 s when not sensing) is only
// reached after Halt, and Close drops the Dev after Halt.
func (s *scd4xSensor) Read(ctx context.Context) (Values, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	if err := s.awaitData(ctx); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	var e scd4x.Env
	if err := s.dev.Sense(&e); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	return Values{
		CO2PPM:       float64(e.CO2),
		TemperatureC: round2(e.Temperature.Celsius()),
		HumidityPct:  round2(float64(e.Humidity) / float64(physic.PercentRH)),
	}, nil
}

func (s *scd4xSensor) awaitData(ctx context.Context) error {
	deadline := s.now().Add(scd4xReadWait)
	for {
		ready, err := s.dataReady()
		if err != nil {
			return err
		}
		if ready {
			return nil
		}
		// The first measurement comes 5 s after open: when it cannot come
		// within the wait, say so at once rather than hold the bus.
		first := s.opened.Add(scd4xPeriod)
		if now := s.now(); !now.Before(deadline) || first.Sub(now) > scd4xReadWait {
			if now.Before(first.Add(scd4xReadWait)) {
				return fmt.Errorf("%w: the first measurement is ready 5 s after open", errWarmingUp)
			}
			return fmt.Errorf("no new measurement within %s: the SCD4x measures every 5 s, use an interval of at least 5s", scd4xReadWait)
		}
		if err := s.wait(ctx, scd4xPoll); err != nil {
			return fmt.Errorf("waiting for a measurement: %w", err)
		}
	}
}

// dataReady sends get_data_ready_status (0xe4b8): the measurement is
// ready when the word's low 11 bits are not all 0 (datasheet 3.9.2).
func (s *scd4xSensor) dataReady() (bool, error) {
	r := make([]byte, 3)
	if err := s.raw.Tx([]byte{0xe4, 0xb8}, r); err != nil {
		return false, fmt.Errorf("get_data_ready_status: %w", err)
	}
	if c := sensirionCRC8(r[:2]); c != r[2] {
		return false, fmt.Errorf("get_data_ready_status: CRC mismatch (% x, want CRC %#02x)", r, c)
	}
	return (uint16(r[0])<<8|uint16(r[1]))&0x7ff != 0, nil
}

// Close stops periodic measurement (periph's Halt sleeps the 500 ms the
// datasheet asks for). It is idempotent; the bus stays open (shared).
func (s *scd4xSensor) Close() error { return closeHalt(&s.mu, s.id, &s.dev) }
