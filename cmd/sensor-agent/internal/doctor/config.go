package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// The config step: the file loads, and what it says about the endpoint.

func (d *doctor) config() bool {
	start := time.Now()
	cfg, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		hint := "fix the file: each line names the file, the line and the key"
		if errors.Is(err, fs.ErrNotExist) {
			hint = "give the config file with -config FILE"
		} else if errors.Is(err, fs.ErrPermission) {
			hint = "run doctor as the agent's user or as root"
		}
		detail := err.Error()
		// The message lists the first few; Total counts them all.
		if ce, ok := errors.AsType[*config.Errors](err); ok && ce.Total > 1 {
			detail = fmt.Sprintf("%d problems in %s:\n%s", ce.Total, d.opts.ConfigPath, detail)
		}
		d.result(StepConfig, start, StatusFail, detail, hint)
		return false
	}
	d.cfg = cfg
	e := cfg.Endpoint
	d.pc = cfg.PublisherConfig()
	d.pc.Getenv = d.opts.Getenv
	detail := fmt.Sprintf("%s: device %s, endpoint %s:%d (alpn %s)", cfg.File, cfg.DeviceID, e.Host, e.Port, e.ALPN)
	if e.FallbackPort != 0 {
		detail += fmt.Sprintf(", fallback port %d", e.FallbackPort)
	}
	if e.Proxy != "" {
		if u, err := publisher.ParseProxyURL(e.Proxy); err == nil && u != nil {
			detail += ", proxy " + u.Redacted()
		}
	}
	detail += ", " + plural(len(cfg.Sensors), "sensor")
	d.result(StepConfig, start, StatusPass, detail, "")
	return true
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
