package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/cmd/sensor-agent/internal/doctor"
)

// `sensor-agent doctor`: the flags and the printing. The steps and every
// word they say are the doctor package's.

var statusMarks = map[string]string{doctor.StatusPass: "✓", doctor.StatusWarn: "!", doctor.StatusFail: "✗", doctor.StatusSkip: "-"}

func cmdDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return doctorCommand(ctx, args, stdout, stderr, doctor.Options{})
}

// doctorCommand is the command with what the flags do not set (the clock,
// the environment) taken from base.
func doctorCommand(ctx context.Context, args []string, stdout, stderr io.Writer, base doctor.Options) error {
	fs := newFlagSet("doctor", stderr)
	cfgPath := fs.String("config", config.DefaultPath, "config file")
	topic := fs.String("topic", "", "topic of the test publish (default sensor-agent/<device_id>/doctor)")
	asJSON := fs.Bool("json", false, "print the steps as a JSON array of {step, status, duration_ms, detail, hint}")
	port := fs.Int("port", 0, "check this port of the endpoint instead of endpoint.port (e.g. endpoint.fallback_port)")
	shadow := fs.Bool("shadow", false, "also read the device's shadow (the config's shadow.name of shadow.thing, default "+doctor.DefaultShadowName+" of device_id) after the test publish, as with shadow.enabled: 200 or 404 pass, 403 names the policy actions")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sensor-agent doctor [-config FILE] [-topic T] [-port N] [-shadow] [-json]")
		fmt.Fprintln(stderr, "Checks each link from the config to AWS IoT (certificate, clock, DNS, proxy, TCP, TLS, a test publish);")
		fmt.Fprintln(stderr, "exit status 0 when all pass (warnings allowed), 1 on any failure.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *port < 0 || *port > 65535 {
		fs.Usage()
		return errUsage
	}
	opts := base
	opts.ConfigPath, opts.Topic, opts.Port, opts.Shadow = *cfgPath, *topic, *port, *shadow
	if !*asJSON {
		opts.Emit = func(s doctor.Step) { printStep(stdout, s) }
	}
	steps := doctor.Run(ctx, opts)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(steps); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, doctor.Summary(steps))
	}
	if doctor.Failed(steps) {
		return exitError{1}
	}
	return nil
}

func printStep(w io.Writer, s doctor.Step) {
	dur := ""
	if s.Status != doctor.StatusSkip {
		dur = fmtMS(s.DurationMS)
	}
	first, rest, _ := strings.Cut(s.Detail, "\n")
	line := fmt.Sprintf("%s %-11s %7s  %s", statusMarks[s.Status], s.Step, dur, first)
	if s.Hint != "" {
		line += " → " + s.Hint
	}
	fmt.Fprintln(w, line)
	if rest != "" {
		for l := range strings.SplitSeq(rest, "\n") {
			fmt.Fprintf(w, "%23s%s\n", "", l)
		}
	}
}

func fmtMS(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.1fms", v)
	case v < 1000:
		return fmt.Sprintf("%.0fms", v)
	}
	return fmt.Sprintf("%.1fs", v/1000)
}
