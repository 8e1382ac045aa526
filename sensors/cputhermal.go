package sensors

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
)

// CPUThermalOpts configures the cpu_thermal driver, which reads a kernel
// thermal zone (the SoC temperature on a Pi).
type CPUThermalOpts struct {
	// Zone is a directory under /sys/class/thermal.
	Zone string `yaml:"zone"`
}

// DefaultCPUThermalOpts are the defaults NewOpts returns for cpu_thermal.
var DefaultCPUThermalOpts = CPUThermalOpts{Zone: "thermal_zone0"}

// Validate implements Validator.
func (o *CPUThermalOpts) Validate() error {
	if o.Zone == "" {
		return errors.New(`zone: empty; set a directory under /sys/class/thermal, e.g. "thermal_zone0"`)
	}
	if strings.ContainsAny(o.Zone, `/\`) || o.Zone == "." || o.Zone == ".." {
		return fmt.Errorf(`zone: %q must be a directory name under /sys/class/thermal, e.g. "thermal_zone0", not a path`, o.Zone)
	}
	return nil
}

func init() {
	Register(Driver{
		Name:    "cpu_thermal",
		Doc:     "kernel thermal zone (the SoC on a Pi): temperature_c",
		NewOpts: defaults(DefaultCPUThermalOpts),
		Open:    openCPUThermal,
	})
}

type cpuThermalSensor struct {
	id     string // "host: cpu_thermal thermal_zone0", prefix of every error
	path   string // <sysfs>/class/thermal/<zone>/temp
	closed atomic.Bool
}

var _ Sensor = (*cpuThermalSensor)(nil)

func openCPUThermal(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, err := openOpts[CPUThermalOpts](env, "cpu_thermal", opts)
	if err != nil {
		return nil, err
	}
	s := &cpuThermalSensor{
		id:   fmt.Sprintf("%s: cpu_thermal %s", env.Name, o.Zone),
		path: filepath.Join(env.SysFS, "class", "thermal", o.Zone, "temp"),
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: open: %w", s.id, err)
	}
	// Fail at Open, not at every Read, when the zone does not exist.
	if _, err := os.Stat(s.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			found, _ := filepath.Glob(filepath.Join(env.SysFS, "class", "thermal", "thermal_zone*"))
			return nil, fmt.Errorf("%s: open: no such zone (present: %s): %w", s.id, listOrNone(baseNames(found)), err)
		}
		return nil, fmt.Errorf("%s: open: %w", s.id, err)
	}
	return s, nil
}

func (s *cpuThermalSensor) Read(ctx context.Context) (Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	milli, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: read: parse %s: %w", s.id, s.path, err)
	}
	c := float64(milli) / 1000
	if err := checkRange(TemperatureC, c, -40, 125); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	return Values{TemperatureC: round2(c)}, nil
}

// Close only marks the sensor closed: there is nothing to release.
func (s *cpuThermalSensor) Close() error {
	s.closed.Store(true)
	return nil
}
