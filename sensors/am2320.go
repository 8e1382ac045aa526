package sensors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/am2320"
)

// AM2320Opts configures the am2320 driver (Aosong AM2320 temperature and
// humidity sensor). The sensor must not be read more often than every 2 s;
// give it an interval of 3s or more (a faster Read is an error).
//
// Its address is fixed at 0x5c by the chip (its datasheet's 0xb8 is the
// same address shifted left). The address key exists so that a wrong
// value gets a clear error.
type AM2320Opts I2COpts

// DefaultAM2320Opts are the defaults NewOpts returns for am2320.
var DefaultAM2320Opts = AM2320Opts(defaultI2COpts(am2320Chip))

// target implements i2cOptions.
func (o *AM2320Opts) target() (string, int) { return o.Bus, o.Address }

// Validate implements Validator.
func (o *AM2320Opts) Validate() error {
	return checkI2C(o.Bus, o.Address, am2320Chip, "address: %#x is not possible; the AM2320's address is fixed at 0x5c (the datasheet's 0xb8 is 0x5c shifted left; remove the key)")
}

// am2320Chip: the AM2320 sleeps between reads and has no ID register.
var am2320Chip = &I2CChip{
	Addrs: []uint16{am2320.SensorAddress},
	What:  "probably an Aosong AM2320 (address 0x5C; a BH1750 with ADDR high uses it too)",
}

// am2320MinGap is the datasheet's minimum time between two reads.
const am2320MinGap = 2 * time.Second

// am2320Limits are the datasheet's ranges (-40..80 °C, 0..99.9 %RH).
var am2320Limits = map[string]Range{
	TemperatureC: {Min: -40, Max: 80},
	HumidityPct:  {Min: 0, Max: 100},
}

func init() {
	Register(Driver{
		Name:    "am2320",
		Doc:     "Aosong AM2320 on I²C (fixed address 0x5c; interval 3s or more): temperature_c, humidity_pct",
		NewOpts: defaults(DefaultAM2320Opts),
		Open:    openAM2320,
		Limits:  am2320Limits,
		I2C:     am2320Chip,
	})
}

// am2320Sensor talks to the AM2320 itself rather than through periph's
// am2320.Dev.Sense, which
//   - decodes the temperature as two's complement while the AM2320 sends
//     sign and magnitude: 0x8065 (-10.1 °C) becomes -3266.7 °C;
//   - retries a failed read 10 times with a 2 s sleep, blocking about 20 s
//     on a dead sensor, with no way to cancel it.
//
// The protocol is the datasheet's (and what Adafruit's CircuitPython driver does):
// a wake-up write the sleeping sensor does not acknowledge, function code
// 0x03 (read registers) for 4 registers from 0x00, a wait of at least
// 1.5 ms, then an 8-byte answer checked with CRC-16/Modbus. One attempt per
// Read: the scheduler retries, and the 2 s rule forbids a quick retry.
type am2320Sensor struct {
	id string // "greenhouse: am2320 /dev/i2c-1 0x5c", prefix of every error

	mu   sync.Mutex // Read and Close may race when the scheduler gives up on a Read
	dev  *i2c.Dev   // nil once closed
	last time.Time  // when the previous read started talking to the sensor
}

var _ Sensor = (*am2320Sensor)(nil)

func openAM2320(ctx context.Context, env Env, opts any) (Sensor, error) {
	_, c, err := openI2COpts[AM2320Opts](ctx, env, "am2320", opts)
	if err != nil {
		return nil, err
	}
	// No I/O here: the AM2320 cannot be probed without a full read, and a
	// read now would make the scheduler's first Read come too soon. A
	// missing sensor shows up as a read error.
	return &am2320Sensor{id: c.id, dev: c.dev()}, nil
}

func (s *am2320Sensor) Read(ctx context.Context) (Values, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	if !s.last.IsZero() {
		if gap := time.Since(s.last); gap < am2320MinGap {
			return nil, fmt.Errorf("%s: read: too soon: the AM2320 needs %v between reads and the last was %v ago; set the sensor's interval to 3s or more",
				s.id, am2320MinGap, gap.Round(time.Millisecond))
		}
	}
	s.last = time.Now()
	data, err := s.readRegisters(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	v, err := am2320Values(data)
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	return v, nil
}

// readRegisters returns registers 0x00..0x03: RH high, RH low, T high,
// T low.
func (s *am2320Sensor) readRegisters(ctx context.Context) ([]byte, error) {
	// Wake-up: the sensor sleeps between reads and does not acknowledge
	// this write while it wakes, so its error means nothing.
	_ = s.dev.Tx([]byte{0x00}, nil)
	if err := sleepUntil(ctx, time.Now().Add(10*time.Millisecond)); err != nil {
		return nil, err
	}
	if err := s.dev.Tx([]byte{0x03, 0x00, 0x04}, nil); err != nil {
		return nil, fmt.Errorf("send read command: %w", err)
	}
	if err := sleepUntil(ctx, time.Now().Add(2*time.Millisecond)); err != nil {
		return nil, err
	}
	// 0x03, 0x04, 4 data bytes, CRC low, CRC high.
	r := make([]byte, 8)
	if err := s.dev.Tx(nil, r); err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if r[0] != 0x03 || r[1] != 0x04 {
		return nil, fmt.Errorf("unexpected response % x (want 03 04 ...): the sensor did not answer the read command", r)
	}
	if got, want := uint16(r[6])|uint16(r[7])<<8, am2320CRC16(r[:6]); got != want {
		return nil, fmt.Errorf("crc mismatch: received %#04x, computed %#04x (noise on the bus, or a long cable)", got, want)
	}
	return r[2:6], nil
}

// am2320Values decodes the 4 data bytes. Humidity is unsigned tenths of a
// percent; temperature is tenths of a degree in sign-magnitude form: bit 15
// is the sign, bits 0-14 the magnitude (datasheet: 0x8065 = -10.1 °C).
func am2320Values(d []byte) (Values, error) {
	rh := uint16(d[0])<<8 | uint16(d[1])
	t := uint16(d[2])<<8 | uint16(d[3])
	c := float64(t&0x7fff) / 10
	if t&0x8000 != 0 && c != 0 { // no -0 in the JSON
		c = -c
	}
	v := Values{TemperatureC: round2(c), HumidityPct: round2(float64(rh) / 10)}
	if err := checkLimits(v, am2320Limits); err != nil {
		return nil, err
	}
	return v, nil
}

// am2320CRC16 is CRC-16/Modbus (poly 0xa001 reflected, init 0xffff), as in
// the datasheet and periph's checkCRC.
func am2320CRC16(b []byte) uint16 {
	crc := uint16(0xffff)
	for _, x := range b {
		crc ^= uint16(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xa001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// Close forgets the device: the AM2320 goes back to sleep by itself after
// each read, so there is nothing to power down. It is idempotent; the bus stays open (shared).
func (s *am2320Sensor) Close() error { return closeForget(&s.mu, &s.dev) }
