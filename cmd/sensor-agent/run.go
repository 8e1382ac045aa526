package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/agent/config"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	cfgPath := fs.String("config", config.DefaultPath, "config file")
	idle := fs.Bool("exit-when-idle", false, "exit 0 once every sensor has stopped and everything taken is published")
	sysfs := fs.String("sysfs", "", "root of the sysfs tree (default /sys; tests point it at a fixture tree)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	slog.SetDefault(log) // periph drivers log through the std log package
	return runAgent(ctx, cfg, agent.Options{Logger: log, SysFS: *sysfs, ExitWhenIdle: *idle})
}

// runAgent runs the agent's whole lifecycle.
func runAgent(ctx context.Context, cfg *config.Config, opts agent.Options) error {
	a := agent.New(cfg, opts)
	if err := a.Provision(); err != nil {
		return err
	}
	defer a.Cleanup()
	opts.Logger.Info("sensor-agent started", "version", version, "device", cfg.DeviceID,
		"config", cfg.File, "endpoint", fmt.Sprintf("%s:%d", cfg.Endpoint.Host, cfg.Endpoint.Port),
		"sensors", len(cfg.Sensors))
	err := a.Run(ctx)
	opts.Logger.Info("sensor-agent stopped")
	return err
}
