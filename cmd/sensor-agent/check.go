package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/agent/scheduler"
	"github.com/sensor-agent/sensor-agent/agent/shadow"
	"github.com/sensor-agent/sensor-agent/cmd/sensor-agent/internal/doctor"
	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/sensors"
)

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	cfgPath := fs.String("config", config.DefaultPath, "config file")
	sysfs := fs.String("sysfs", "", "root of the sysfs tree (default /sys)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return check(ctx, *cfgPath, *sysfs, doctor.SystemClock, stdout, stderr)
}

// check is the command after its flags; clockState says whether the clock
// is synchronised (doctor.SystemClock).
func check(ctx context.Context, cfgPath, sysfs string, clockState func() (bool, string), stdout, stderr io.Writer) error {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "config %s: ok (device %s, %d sensors)\n", cfg.File, cfg.DeviceID, len(cfg.Sensors))
	failed := 0
	if cfg.Shadow.Enabled {
		var ok bool
		if cfg, ok = checkRemote(cfgPath, cfg, stdout); !ok {
			failed++
		}
	}
	for _, name := range cfg.Disabled {
		fmt.Fprintf(stdout, "sensor %s: disabled (enabled: false)\n", name)
	}
	e := cfg.Endpoint
	c, err := publisher.New(cfg.PublisherConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		failed++
		fmt.Fprintf(stdout, "endpoint: FAIL %v\n", err)
	} else {
		leaf := c.Certificate()
		c.Close()
		synced, how := clockState()
		if problem := doctor.CertValidityProblem(e.CertFile, leaf, time.Now(), synced, how); problem != "" {
			failed++
			fmt.Fprintf(stdout, "endpoint %s:%d: FAIL %s\n", e.Host, e.Port, problem)
		} else {
			fmt.Fprintf(stdout, "endpoint %s:%d: certificate and key ok\n", e.Host, e.Port)
		}
		if problem := publisher.KeyModeProblem(e.KeyFile); problem != "" {
			fmt.Fprintf(stdout, "endpoint %s:%d: warning: %s\n", e.Host, e.Port, problem)
		}
	}
	log := newLogger(stderr, cfg.LogLevel)
	for _, s := range cfg.Sensors {
		v, err := readOnce(ctx, s, log.With("sensor", s.Name), sysfs)
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "sensor %s (%s): FAIL %v\n", s.Name, s.Driver, err)
			continue
		}
		fmt.Fprintf(stdout, "sensor %s (%s): %s\n", s.Name, s.Driver, formatValues(v))
	}
	if failed > 0 {
		return fmt.Errorf("%d problem(s) found", failed)
	}
	return nil
}

// checkRemote shows the desired state saved from the shadow and whether
// it still applies to the file; the config run would use comes back.
func checkRemote(cfgPath string, cfg *config.Config, stdout io.Writer) (*config.Config, bool) {
	saved, err := shadow.Load(cfg.StateDir)
	switch {
	case err != nil:
		fmt.Fprintf(stdout, "remote config: FAIL %v\n", err)
		return cfg, false
	case len(saved.Desired) == 0:
		fmt.Fprintf(stdout, "remote config: none saved (shadow %s/%s)\n", cfg.Shadow.Thing, cfg.Shadow.Name)
		return cfg, true
	}
	file, err := os.ReadFile(cfgPath)
	if err != nil {
		fmt.Fprintf(stdout, "remote config: FAIL %v\n", err)
		return cfg, false
	}
	over, err := shadow.Overlay(file, cfgPath, saved.Desired, os.LookupEnv)
	js, _ := json.Marshal(saved.Desired)
	if err != nil {
		fmt.Fprintf(stdout, "remote config (shadow version %d): %s\nremote config: FAIL no longer applies to the file, run would use the file alone:\n%v\n", saved.Version, js, err)
		return cfg, false
	}
	fmt.Fprintf(stdout, "remote config (shadow version %d): %s: applies; the checks below use the file with it\n", saved.Version, js)
	return over, true
}

// readOnce opens a sensor, reads it once within its timeout and closes it.
func readOnce(ctx context.Context, s config.Sensor, log *slog.Logger, sysfs string) (sensors.Values, error) {
	drv, _ := sensors.Lookup(s.Driver)
	env := sensors.DefaultEnv(s.Name, log)
	if sysfs != "" {
		env.SysFS = sysfs
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout.D()+10*time.Second)
	defer cancel()
	dev, err := sensors.Open(ctx, drv, env, s.Opts, s.Common())
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer dev.Close()
	v, err := scheduler.ReadOnce(ctx, dev, s.Timeout.D())
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return v, nil
}

func formatValues(v sensors.Values) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%g", k, v[k])
	}
	return strings.Join(parts, " ")
}

func cmdDrivers(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("drivers", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, d := range sensors.Drivers() {
		fmt.Fprintf(stdout, "%s\n    %s\n", d.Name, d.Doc)
		for _, o := range sensors.Options(d.NewOpts()) {
			fmt.Fprintf(stdout, "    %-14s %-10s default %s\n", o.Key, o.Type, o.Default)
		}
		var lim []string
		for k, r := range d.Limits {
			lim = append(lim, fmt.Sprintf("%s %g..%g", k, r.Min, r.Max))
		}
		if len(lim) > 0 {
			sort.Strings(lim)
			fmt.Fprintf(stdout, "    limits: %s\n", strings.Join(lim, ", "))
		}
	}
	fmt.Fprintln(stdout, "\nevery sensor also takes: name, driver, interval, timeout, limits, calibrate, mux")
	return nil
}
