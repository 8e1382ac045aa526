package sensors

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
)

// DS18B20Opts configures the ds18b20 driver. By default it reads the
// kernel's w1_therm files rather than driving 1-wire itself: it is the most
// robust path on a Pi (periph's netlink 1-wire is broken on a Pi 5). With
// Bridge set it drives a DS2482 I²C→1-wire bridge through periph instead
// (ds18b20_ds248x.go).
type DS18B20Opts struct {
	// ID is the ROM id, the directory name under /sys/bus/w1/devices, e.g.
	// "28-0316a2795a2f". Empty picks the only 28-* device there is (on the
	// bridge: the only DS18B20 a 1-wire search finds).
	ID string `yaml:"id"`
	// Bridge reads the sensor through a DS2482 on I²C, e.g.
	// `bridge: {bus: "1", address: 0x18}`. Nil (the default) uses the
	// kernel's w1_therm.
	Bridge *DS2482Bridge `yaml:"bridge"`
	// Resolution is the conversion resolution in bits, 9..12 (94..750 ms);
	// 0 means 12. Bridge only.
	Resolution int `yaml:"resolution"`
}

// DefaultDS18B20Opts are the defaults NewOpts returns for ds18b20.
var DefaultDS18B20Opts = DS18B20Opts{}

var w1ID = regexp.MustCompile(`^[0-9a-f]{2}-[0-9a-f]{12}$`)

// Validate implements Validator.
func (o *DS18B20Opts) Validate() error {
	if o.ID != "" && !w1ID.MatchString(o.ID) {
		return fmt.Errorf("id: %q is not a 1-wire ROM id; use the directory name under /sys/bus/w1/devices, e.g. \"28-0316a2795a2f\" (lowercase), or leave it out when there is only one sensor", o.ID)
	}
	return o.validateBridge()
}

func init() {
	Register(Driver{
		Name:    "ds18b20",
		Doc:     "DS18B20 1-wire thermometer through the kernel w1_therm driver, or a DS2482 I²C bridge (bridge:): temperature_c",
		NewOpts: defaults(DefaultDS18B20Opts),
		Open:    openDS18B20,
	})
}

type ds18b20Sensor struct {
	id     string // "greenhouse: ds18b20 28-0316a2795a2f", prefix of every error
	dir    string // <sysfs>/bus/w1/devices/<rom id>
	closed atomic.Bool
}

var _ Sensor = (*ds18b20Sensor)(nil)

func openDS18B20(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, err := openOpts[DS18B20Opts](env, "ds18b20", opts)
	if err != nil {
		return nil, err
	}
	if o.Bridge != nil {
		return openDS18B20Bridge(ctx, env, o)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: ds18b20: open: %w", env.Name, err)
	}
	devices := filepath.Join(env.SysFS, "bus", "w1", "devices")
	if _, err := os.Stat(devices); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: ds18b20: open: %w", env.Name, noOneWireBus(devices, err))
	}
	rom := o.ID
	if rom == "" {
		found, err := filepath.Glob(filepath.Join(devices, "28-*"))
		if err != nil {
			return nil, fmt.Errorf("%s: ds18b20: open: %w", env.Name, err)
		}
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("%s: ds18b20: open: no DS18B20 (28-*) under %s; enable 1-wire (dtoverlay=w1-gpio) and check the wiring and the 4.7k pull-up", env.Name, devices)
		case 1:
			rom = filepath.Base(found[0])
			env.log().Info("ds18b20: picked the only sensor present", "id", rom)
		default:
			return nil, fmt.Errorf("%s: ds18b20: open: %d sensors found (%s); set id to one of them", env.Name, len(found), strings.Join(baseNames(found), ", "))
		}
	}
	s := &ds18b20Sensor{
		id:  fmt.Sprintf("%s: ds18b20 %s", env.Name, rom),
		dir: filepath.Join(devices, rom),
	}
	if _, err := os.Stat(s.dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			found, _ := filepath.Glob(filepath.Join(devices, "[0-9a-f][0-9a-f]-*"))
			return nil, fmt.Errorf("%s: open: not found under %s (present: %s): %w", s.id, devices, listOrNone(baseNames(found)), err)
		}
		return nil, fmt.Errorf("%s: open: %w", s.id, err)
	}
	return s, nil
}

// Read reads w1_slave, which makes the kernel run a conversion (up to
// 750 ms at 12 bits); it cannot be interrupted once started.
func (s *ds18b20Sensor) Read(ctx context.Context) (Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	milli, err := s.readMilli()
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	if milli == 85000 {
		return nil, fmt.Errorf("%s: read: got 85 °C, the power-on value: no conversion ran (check the sensor's power and pull-up; parasite power needs VDD)", s.id)
	}
	c := float64(milli) / 1000
	if err := checkRange(TemperatureC, c, -55, 125); err != nil {
		return nil, fmt.Errorf("%s: read: %w; the sensor did not answer properly", s.id, err)
	}
	return Values{TemperatureC: round2(c)}, nil
}

// readMilli returns millidegrees C from w1_slave, or from temperature when
// w1_slave is absent (newer kernels may only have the latter).
func (s *ds18b20Sensor) readMilli() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "w1_slave"))
	if err == nil {
		return parseW1Slave(b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	b, err = os.ReadFile(filepath.Join(s.dir, "temperature"))
	if err != nil {
		if _, serr := os.Stat(s.dir); errors.Is(serr, fs.ErrNotExist) {
			return 0, fmt.Errorf("device is gone from the bus (unplugged or wiring fault): %w", serr)
		}
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse temperature: %w", err)
	}
	return v, nil
}

// parseW1Slave parses the two lines of w1_slave:
//
//	5e 01 4b 46 7f ff 02 10 d7 : crc=d7 YES
//	5e 01 4b 46 7f ff 02 10 d7 t=21875
func parseW1Slave(b []byte) (int, error) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		return 0, fmt.Errorf("parse w1_slave: want 2 lines, got %d: %q", len(lines), b)
	}
	first := strings.TrimSpace(lines[0])
	scratch, _, _ := strings.Cut(first, ":")
	switch {
	case strings.HasSuffix(first, " NO"):
		return 0, errors.New("crc check failed (w1_slave says NO): noisy or long wiring, or a weak pull-up")
	case !strings.HasSuffix(first, " YES"):
		return 0, fmt.Errorf("parse w1_slave: no crc verdict in %q", first)
	case strings.Trim(scratch, "0 ") == "":
		// All zeros passes the CRC check, but is what a missing answer reads as.
		return 0, errors.New("scratchpad is all zeros: the sensor did not answer")
	}
	_, t, ok := strings.Cut(lines[1], "t=")
	if !ok {
		return 0, fmt.Errorf("parse w1_slave: no t= in %q", lines[1])
	}
	v, err := strconv.Atoi(strings.TrimSpace(t))
	if err != nil {
		return 0, fmt.Errorf("parse w1_slave: %w", err)
	}
	return v, nil
}

// Close only marks the sensor closed: the kernel owns the device.
func (s *ds18b20Sensor) Close() error {
	s.closed.Store(true)
	return nil
}
