package sensors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ads1x15"
)

// ADS1x15Opts configures the ads1x15 driver (TI ADS1115 16-bit or ADS1015
// 12-bit ADC, four inputs), which turns each configured channel into a
// named value: value = volts × scale + offset.
type ADS1x15Opts struct {
	// Bus is the I²C bus: "1", "I2C1" or "/dev/i2c-1".
	Bus string `yaml:"bus"`
	// Address is 0x48..0x4b, set by where ADDR is tied: GND, VDD, SDA, SCL.
	Address int `yaml:"address"`
	// Chip is ads1115 (16 bits, 8..860 samples/s) or ads1015 (12 bits,
	// 128..3300 samples/s).
	Chip string `yaml:"chip"`
	// Channels are read in order, one conversion each, on every Read.
	Channels []ADS1x15Channel `yaml:"channels"`
}

// ADS1x15Channel is one input of an ads1x15 sensor. Keys left out take
// the defaults noted; a 0 scale means 1.
type ADS1x15Channel struct {
	// Channel is the input: "0".."3" measure AINn against GND;
	// "0-1", "0-3", "1-3", "2-3" measure the difference of two inputs.
	Channel string `yaml:"channel"`
	// Name is the value's name with its unit, e.g. loop_current_ma or
	// soil_moisture_pct.
	Name string `yaml:"name"`
	// MaxVoltage is the largest voltage to measure, in volts; it picks the
	// smallest full-scale range that covers it: 0.256, 0.512, 1.024,
	// 2.048, 4.096 or 6.144 V. Default 4.096. No input may exceed
	// VDD + 0.3 V whatever the range.
	MaxVoltage float64 `yaml:"max_voltage"`
	// DataRate is the conversion rate in samples per second; a read takes
	// 1/data_rate. ADS1115: 8, 16, 32, 64, 128, 250, 475, 860; ADS1015:
	// 128, 250, 490, 920, 1600, 2400, 3300. Default 128. Slower is less
	// noisy.
	DataRate int `yaml:"data_rate"`
	// Scale and Offset make the value: volts × scale + offset. Default 1
	// and 0: the value is the voltage.
	Scale  float64 `yaml:"scale"`
	Offset float64 `yaml:"offset"`
	// Min and Max, when set, are the value's plausible range: a reading
	// outside is an error (e.g. a 4-20 mA loop below 3.8 mA is a broken
	// wire).
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
}

// DefaultADS1x15Opts are the defaults NewOpts returns for ads1x15.
// Channels has no default: it depends on the wiring.
var DefaultADS1x15Opts = ADS1x15Opts{
	Bus:     "1",
	Address: int(ads1x15Chip.Addrs[0]),
	Chip:    "ads1115",
}

const (
	ads1x15DefaultMaxV = 4.096
	ads1x15DefaultRate = 128 // valid on both chips
)

var (
	ads1x15Inputs = map[string]ads1x15.Channel{
		"0": ads1x15.Channel0, "1": ads1x15.Channel1, "2": ads1x15.Channel2, "3": ads1x15.Channel3,
		"0-1": ads1x15.Channel0Minus1, "0-3": ads1x15.Channel0Minus3,
		"1-3": ads1x15.Channel1Minus3, "2-3": ads1x15.Channel2Minus3,
	}
	ads1x15Rates = map[string][]int{
		"ads1115": {8, 16, 32, 64, 128, 250, 475, 860},
		"ads1015": {128, 250, 490, 920, 1600, 2400, 3300},
	}
	ads1x15Ranges = []float64{0.256, 0.512, 1.024, 2.048, 4.096, 6.144}
	// Channel names must match UnitValueName, e.g. loop_current_ma.
)

func (c *ADS1x15Channel) maxV() float64 {
	if c.MaxVoltage == 0 {
		return ads1x15DefaultMaxV
	}
	return c.MaxVoltage
}

func (c *ADS1x15Channel) rate() int {
	if c.DataRate == 0 {
		return ads1x15DefaultRate
	}
	return c.DataRate
}

func (c *ADS1x15Channel) scale() float64 {
	if c.Scale == 0 {
		return 1
	}
	return c.Scale
}

// fullScale is the range periph picks for maxV: the smallest that covers it.
func (c *ADS1x15Channel) fullScale() float64 {
	for _, r := range ads1x15Ranges {
		if c.maxV() <= r+1e-9 {
			return r
		}
	}
	return math.NaN()
}

// Validate implements Validator.
func (o *ADS1x15Opts) Validate() error {
	if err := checkI2C(o.Bus, o.Address, ads1x15Chip, "address: %#x is not an ADS1x15 address; use 0x48..0x4b (ADDR to GND, VDD, SDA or SCL)"); err != nil {
		return err
	}
	rates, ok := ads1x15Rates[o.Chip]
	if !ok {
		return fmt.Errorf("chip: %q is not supported; use ads1115 (16 bits) or ads1015 (12 bits)", o.Chip)
	}
	if len(o.Channels) == 0 {
		return errors.New("channels: empty; list the inputs to read, e.g. [{channel: 0, name: voltage_v}]")
	}
	names := map[string]int{}
	for i := range o.Channels {
		c := &o.Channels[i]
		at := fmt.Sprintf("channels[%d]", i)
		if _, ok := ads1x15Inputs[c.Channel]; !ok {
			return fmt.Errorf(`%s.channel: %q is not an input; use 0, 1, 2 or 3 (against GND) or "0-1", "0-3", "1-3", "2-3" (differential)`, at, c.Channel)
		}
		if c.Name == "" {
			return fmt.Errorf("%s.name: required; name the value with its unit, e.g. voltage_v or soil_moisture_pct", at)
		}
		if !UnitValueName.MatchString(c.Name) {
			return fmt.Errorf("%s.name: %q is not a value name; use lowercase snake_case ending in a unit, e.g. voltage_v, loop_current_ma or soil_moisture_pct", at, c.Name)
		}
		if j, dup := names[c.Name]; dup {
			return fmt.Errorf("%s.name: %q is also channels[%d]'s name", at, c.Name, j)
		}
		names[c.Name] = i
		if v := c.MaxVoltage; v < 0 || v > ads1x15Ranges[len(ads1x15Ranges)-1] || math.IsNaN(v) {
			return fmt.Errorf("%s.max_voltage: %g V is outside the ADC's ranges; use 0.256..6.144 (and never apply more than VDD+0.3 V to an input)", at, v)
		}
		if !slices.Contains(rates, c.rate()) {
			return fmt.Errorf("%s.data_rate: %d is not an %s rate; use one of %s samples/s", at, c.DataRate, strings.ToUpper(o.Chip), ads1x15List(rates))
		}
		if math.IsNaN(c.Scale) || math.IsInf(c.Scale, 0) || math.IsNaN(c.Offset) || math.IsInf(c.Offset, 0) {
			return fmt.Errorf("%s: scale and offset must be finite numbers", at)
		}
		if c.Min != nil && c.Max != nil && *c.Min > *c.Max {
			return fmt.Errorf("%s: min %g is above max %g", at, *c.Min, *c.Max)
		}
	}
	return nil
}

// ads1x15Chip: 0x48..0x4b by the ADDR pin; the configuration register
// reads 0x8583 after reset.
var ads1x15Chip = &I2CChip{
	Addrs: span(0x48, 0x4b),
	Identify: func(b I2CBus, addr uint16) bool {
		v, ok := readReg16(b, addr, 0x01)
		return ok && v == 0x8583
	},
	What: "TI ADS1115/ADS1015 (config 0x8583 after reset)",
}

func ads1x15List(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

func init() {
	Register(Driver{
		Name:    "ads1x15",
		Doc:     "TI ADS1115/ADS1015 ADC on I²C: one named value per channel, volts × scale + offset (e.g. a 4-20 mA loop or a soil-moisture probe)",
		NewOpts: defaults(DefaultADS1x15Opts),
		Open:    openADS1x15,
		I2C:     ads1x15Chip,
		// No Limits: the values are named by the user; each channel's
		// min and max are checked by the driver.
	})
}

type ads1x15Pin struct {
	cfg  ADS1x15Channel
	pin  ads1x15.PinADC
	fsr  float64       // full-scale range, volts
	conv time.Duration // nominal conversion time, 1/data_rate
}

// ads1x15Sensor reads its channels through periph's PinADC.Read, which
// writes the configuration (starting a single-shot conversion), sleeps
// 1/data_rate and reads the conversion register, without checking that the
// conversion finished. The data rate may be 10 % slow (datasheet), and a
// result read early is the previous conversion: another channel's. A txTap
// polls the config register's OS bit (1 = idle, done) before periph's
// conversion read, so a reading always belongs to its channel.
type ads1x15Sensor struct {
	id   string // "garden: ads1115 /dev/i2c-1 0x48", prefix of every error
	addr uint16
	bus  i2c.Bus
	max  int32 // largest code: 0x7fff, or 0x7ff0 on the 12-bit ADS1015
	// sleep waits between OS-bit polls; tests replace it.
	sleep func(time.Duration)

	mu   sync.Mutex // Read and Close may race when the scheduler gives up on a Read
	pins []ads1x15Pin
	cur  time.Duration // the conversion time of the channel being read
}

var _ Sensor = (*ads1x15Sensor)(nil)

func openADS1x15(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, err := openOpts[ADS1x15Opts](env, "ads1x15", opts)
	if err != nil {
		return nil, err
	}
	c, err := openI2C(ctx, env, o.Chip, o.Bus, o.Address)
	if err != nil {
		return nil, err
	}
	id := c.id
	s := &ads1x15Sensor{id: id, addr: c.addr, bus: c.bus, max: 0x7fff, sleep: time.Sleep}
	tap := &txTap{Bus: c.bus, before: s.awaitConversion}
	popts := &ads1x15.Opts{I2cAddress: s.addr}
	var dev *ads1x15.Dev
	if o.Chip == "ads1015" {
		dev, err = ads1x15.NewADS1015(tap, popts)
		s.max = 0x7ff0 // 12-bit result, left-aligned
	} else {
		dev, err = ads1x15.NewADS1115(tap, popts)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	// periph's constructors never touch the bus: read the config register
	// so a missing chip is an open error, not a read error.
	cfg := make([]byte, 2)
	if err := c.bus.Tx(s.addr, []byte{0x01}, cfg); err != nil {
		return nil, c.openErr(fmt.Errorf("read config register: %w", err))
	}
	for i, c := range o.Channels {
		maxV := physic.ElectricPotential(math.Round(c.maxV() * float64(physic.Volt)))
		// BestQuality picks the slowest rate at least as fast as asked:
		// exactly data_rate, which Validate checked is one of the chip's.
		p, err := dev.PinForChannel(ads1x15Inputs[c.Channel], maxV, physic.Frequency(c.rate())*physic.Hertz, ads1x15.BestQuality)
		if err != nil {
			return nil, fmt.Errorf("%s: open: channels[%d]: %w", id, i, err)
		}
		s.pins = append(s.pins, ads1x15Pin{cfg: c, pin: p, fsr: c.fullScale(), conv: time.Second / time.Duration(c.rate())})
	}
	return s, nil
}

// awaitConversion runs before each of periph's transactions; before a
// conversion-register read it polls the OS bit, for up to 40 % more than
// the nominal conversion time.
func (s *ads1x15Sensor) awaitConversion(addr uint16, w, r []byte) error {
	if addr != s.addr || len(w) != 1 || w[0] != 0x00 || len(r) != 2 {
		return nil
	}
	cfg := make([]byte, 2)
	for try := 0; ; try++ {
		if err := s.bus.Tx(s.addr, []byte{0x01}, cfg); err != nil {
			return fmt.Errorf("read config register: %w", err)
		}
		if cfg[0]&0x80 != 0 {
			return nil
		}
		if try == 4 {
			return fmt.Errorf("conversion not finished 40%% after its nominal %s (config %#04x): ADC clock far off, or the chip was reset", s.cur, uint16(cfg[0])<<8|uint16(cfg[1]))
		}
		s.sleep(s.cur/10 + 50*time.Microsecond)
	}
}

// Read converts each channel in turn.
func (s *ads1x15Sensor) Read(ctx context.Context) (Values, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins == nil {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	v := make(Values, len(s.pins))
	var bad []string
	for _, p := range s.pins {
		// periph takes no context: check before each conversion.
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s: read: %w", s.id, err)
		}
		s.cur = p.conv
		sample, err := p.pin.Read()
		if err != nil {
			return nil, fmt.Errorf("%s: read %s (channel %s): %w", s.id, p.cfg.Name, p.cfg.Channel, err)
		}
		if sample.Raw >= s.max || sample.Raw <= math.MinInt16 {
			return nil, fmt.Errorf("%s: read %s (channel %s): input at or beyond the ±%g V range (code %d); raise max_voltage, within VDD+0.3 V", s.id, p.cfg.Name, p.cfg.Channel, p.fsr, sample.Raw)
		}
		x := float64(sample.V)/float64(physic.Volt)*p.cfg.scale() + p.cfg.Offset
		x = roundSig(x, 6)
		if (p.cfg.Min != nil && x < *p.cfg.Min) || (p.cfg.Max != nil && x > *p.cfg.Max) {
			bad = append(bad, fmt.Sprintf("%s = %g is outside %s", p.cfg.Name, x, ads1x15Bounds(p.cfg)))
		}
		v[p.cfg.Name] = x
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("%s: read: implausible reading: %s (a wiring or sensor fault; change the channel's min/max to change the range)", s.id, strings.Join(bad, "; "))
	}
	return v, nil
}

func ads1x15Bounds(c ADS1x15Channel) string {
	lo, hi := "-inf", "+inf"
	if c.Min != nil {
		lo = strconv.FormatFloat(*c.Min, 'g', -1, 64)
	}
	if c.Max != nil {
		hi = strconv.FormatFloat(*c.Max, 'g', -1, 64)
	}
	return lo + ".." + hi
}

// Close forgets the pins. In single-shot mode the ADC powers down after
// each conversion, so there is nothing to stop. It is idempotent; the bus
// stays open (shared).
func (s *ads1x15Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pins = nil
	return nil
}
