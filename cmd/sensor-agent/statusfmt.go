package main

// How `status` prints a report: a few lines a technician reads at a
// glance, the sensors as a table, then what is wrong.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/sensors"
)

func printStatus(w io.Writer, rep statusReport, now time.Time) {
	fmt.Fprintf(w, "sensor-agent %s (pid %d): %s, up %s\n", rep.Version, rep.PID, rep.State, since(rep.Started, now))
	line := func(k, format string, args ...any) {
		fmt.Fprintf(w, "  %-14s "+format+"\n", append([]any{k + ":"}, args...)...)
	}
	line("device", "%s (config %s)", rep.Device, rep.Config)
	if rep.ClockSynced {
		line("clock", "synchronised")
	} else {
		line("clock", `NOT synchronised: readings carry "clock_synced":false`)
	}
	if c := rep.Certificate; c != nil {
		line("certificate", "%s, %s (until %s)", c.Subject, daysLeft(c.DaysLeft), c.NotAfter.Format(time.DateOnly))
	}
	line("route", "%s", route(rep.Route))
	line("publish", "%s", publishLine(rep.Publish, now))
	if rep.Publish.LastError != "" {
		line("last error", "%s", rep.Publish.LastError)
	}
	remoteLines(line, rep.Remote)
	fmt.Fprintln(w)
	printSensors(w, rep.Sensors, now)
	fmt.Fprintln(w)
	printSpool(w, rep.Spool, now)
	if len(rep.Problems) > 0 {
		fmt.Fprintln(w, "\nproblems:")
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  - %s\n", p)
		}
	}
}

func daysLeft(d int) string {
	switch {
	case d < 0:
		return fmt.Sprintf("EXPIRED %d days ago", -d)
	case d < 30:
		return fmt.Sprintf("%d days left: renew it", d)
	}
	return fmt.Sprintf("%d days left", d)
}

func route(r agent.Route) string {
	s := fmt.Sprintf("%s:%d", r.Host, r.Port)
	if r.ALPN {
		s += " (ALPN x-amzn-http-ca)"
	}
	if r.Fallback {
		s += ", on the fallback port: the configured port is unreachable"
	}
	if r.Proxy == "" {
		return s + ", direct"
	}
	return fmt.Sprintf("%s, via proxy %s (%s)", s, r.Proxy, r.ProxySource)
}

func publishLine(p agent.PublishState, now time.Time) string {
	last := "never"
	if !p.LastSuccess.IsZero() {
		last = stamp(p.LastSuccess, now)
	}
	state := "ok"
	if p.LastError != "" {
		state = "FAILING"
	}
	return fmt.Sprintf("%s, last success %s; %d readings taken, %d published in %d messages, %d errors",
		state, last, p.Taken, p.Readings, p.Messages, p.Errors)
}

func printSensors(w io.Writer, ss []agent.SensorSnapshot, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SENSOR\tDRIVER\tINTERVAL\tHEALTH\tERRORS\tLAST READING\tVALUES")
	var failing []agent.SensorSnapshot
	for _, s := range ss {
		health := "ok"
		switch {
		case !s.Healthy:
			health = "FAILING"
			failing = append(failing, s)
		case s.Done:
			health = "done"
		}
		last := "never"
		if !s.LastReading.IsZero() {
			last = stamp(s.LastReading, now)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.Driver, s.Interval, health, s.ConsecutiveErrors, last, values(s.Values))
	}
	tw.Flush()
	for _, s := range failing {
		fmt.Fprintf(w, "  %s: %s\n", s.Name, s.LastError)
	}
}

func printSpool(w io.Writer, sp agent.SpoolSnapshot, now time.Time) {
	fmt.Fprintf(w, "spool %s:\n", sp.Dir)
	line := func(k, format string, args ...any) {
		fmt.Fprintf(w, "  %-14s "+format+"\n", append([]any{k + ":"}, args...)...)
	}
	if sp.MemoryMode {
		line("MEMORY MODE", "the spool cannot be written (%s): readings wait in memory", sp.MemoryReason)
	}
	pending := fmt.Sprintf("%d readings", sp.Pending)
	if sp.InMemory > 0 {
		pending += fmt.Sprintf(" (%d only in memory)", sp.InMemory)
	}
	if !sp.Oldest.IsZero() {
		pending += ", oldest " + stamp(sp.Oldest, now)
	}
	line("pending", "%s", pending)
	line("disk", "%s", bytesIEC(sp.DiskBytes))
	dropped := "none"
	if len(sp.Dropped) > 0 {
		var parts []string
		for _, r := range slices.Sorted(maps.Keys(sp.Dropped)) {
			parts = append(parts, fmt.Sprintf("%d %s", sp.Dropped[r], r))
		}
		dropped = strings.Join(parts, ", ")
	}
	line("dropped", "%s", dropped)
	line("dead letters", "%d readings since start (%s)", sp.DeadLettered, sp.DeadLetterFile)
}

// stamp is a time and how long ago it was: the clock time alone today,
// with the date otherwise.
func stamp(t, now time.Time) string {
	t = t.UTC()
	layout := "15:04:05Z"
	if y, m, d := t.Date(); !sameDay(y, m, d, now.UTC()) {
		layout = "2006-01-02 15:04:05Z"
	}
	return fmt.Sprintf("%s (%s ago)", t.Format(layout), since(t, now))
}

func sameDay(y int, m time.Month, d int, t time.Time) bool {
	ty, tm, td := t.Date()
	return y == ty && m == tm && d == td
}

// since is how long ago t was, to the second (to the minute past a day).
func since(t, now time.Time) string {
	d := max(now.Sub(t), 0)
	if d >= 24*time.Hour {
		days := d / (24 * time.Hour)
		return fmt.Sprintf("%dd%s", days, (d - days*24*time.Hour).Round(time.Minute))
	}
	return d.Round(time.Second).String()
}

func bytesIEC(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// values prints name value unit, by name: "temperature 23.35 °C".
func values(v map[string]float64) string {
	if len(v) == 0 {
		return "-"
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(v)) {
		x := strconv.FormatFloat(v[name], 'f', -1, 64)
		part := name + " " + x
		if base, unit := sensors.Unit(name); unit != "" {
			part = base + " " + x + " " + unit
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

// remoteLines says what the Device Shadow's desired state does: "off"
// without a shadow, "none" before any desired state, else the overlay
// and, when the latest was refused, why.
func remoteLines(line func(k, format string, a ...any), r *agent.RemoteConfig) {
	switch {
	case r == nil:
		line("remote config", "off (no shadow)")
	case len(r.Applied) == 0:
		line("remote config", "none (the shadow has no desired state)")
	default:
		js, _ := json.Marshal(r.Applied)
		line("remote config", "shadow version %d: %s", r.Version, js)
	}
	if r != nil && r.Error != "" {
		line("remote refused", "%s", r.Error)
	}
}
