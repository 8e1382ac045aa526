// Command benchtable reads `go test -bench` output on stdin and prints
// issue 11's figures, each with its target and whether it is met, as a
// Markdown table (`make bench` runs it after the benchmarks).
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// figure is one target: a metric of one benchmark, compared with a bound.
type figure struct {
	name   string
	bench  string // benchmark name as printed with -cpu 1 (no -N suffix)
	unit   string
	target float64
	atMost bool // the figure must be ≤ target (else ≥)
	note   string
}

var figures = []figure{
	{"CPU per reading, 10 sensors × 10 Hz (whole agent)", "BenchmarkAgentSteady", "cpu-µs/reading", 10, true, "µs"},
	{"CPU, 10 sensors × 1 Hz at defaults", "BenchmarkAgentIdle", "%core", 0.05, true, "% of a core"},
	{"wake-ups, 10 sensors × 1 Hz at defaults", "BenchmarkAgentIdle", "ctxsw/s", 10, true, "context switches/s"},
	{"CPU per kept-alive publish, 10-reading message", "BenchmarkPublish/1488B", "cpu-µs/msg", 150, true, "µs"},
	{"CPU per kept-alive publish, one-reading message", "BenchmarkPublish/129B", "cpu-µs/msg", 150, true, "µs"},
	{"wire bytes ÷ payload JSON at defaults", "BenchmarkAgentIdle", "wire/payload", 1.10, true, "×"},
	{"wire bytes ÷ payload JSON, 10 × 10 Hz", "BenchmarkAgentSteady", "wire/payload", 1.10, true, "×"},
	{"steady RSS at defaults (10 × 1 Hz), mean", "BenchmarkRSS/steady_10x1Hz_target_12MiB", "mean-RSS-MiB", 12, true, "MiB"},
	{"steady RSS, 10 × 10 Hz, mean", "BenchmarkRSS/steady_10x10Hz_target_12MiB", "mean-RSS-MiB", 12, true, "MiB"},
	{"peak RSS draining 1M readings", "BenchmarkRSS/drain_1M_target_24MiB_60s", "peak-MiB", 24, true, "MiB"},
	{"time to drain 1M readings", "BenchmarkDrainBacklog", "s/1M-readings", 60, true, "s"},
	{"spool bytes written ÷ encoded reading", "BenchmarkBytesPerReading", "x-encoded", 1.5, true, "×"},
	{"armv6 binary", "BenchmarkBinarySize", "armv6-MB", 12, true, "MB"},
	{"CPU with the live page's listener on ÷ off, 10 × 1 Hz, nobody watching", "BenchmarkHTTPIdle", "on/off", 1.10, true, "×"},
	{"readings per CPU-second against the article's approach", "BenchmarkAgentVsSeed", "x-agent/seed", 300, false, "×"},
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	results, err := parse(in)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "| figure | measured | target | met |")
	fmt.Fprintln(out, "|---|---|---|---|")
	for _, f := range figures {
		v, ok := results[f.bench][f.unit]
		bound := "≥ "
		if f.atMost {
			bound = "≤ "
		}
		target := bound + strconv.FormatFloat(f.target, 'g', -1, 64) + " " + f.note
		if !ok {
			fmt.Fprintf(out, "| %s | not run (%s) | %s | — |\n", f.name, f.bench, target)
			continue
		}
		met := "no"
		if f.atMost && v <= f.target || !f.atMost && v >= f.target {
			met = "yes"
		}
		fmt.Fprintf(out, "| %s | %s %s | %s | %s |\n", f.name, format(v), f.note, target, met)
	}
	fmt.Fprintln(out, "| CPU per reading against Telegraf 1.37.2 | `make compare` (needs Telegraf) | ≥ 10 × less | — |")
	return nil
}

// parse returns the metrics of every benchmark line run with one CPU
// (the agent runs with GOMAXPROCS=1); a benchmark run several times keeps
// its last figures.
func parse(in io.Reader) (map[string]map[string]float64, error) {
	results := map[string]map[string]float64{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := fields[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				continue // run with -cpu N > 1
			}
		}
		m := map[string]float64{}
		// After the name and the iteration count come value-unit pairs.
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				break
			}
			m[fields[i+1]] = v
		}
		results[name] = m
	}
	return results, sc.Err()
}

func format(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}
