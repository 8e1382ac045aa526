//go:build linux

// Command compare is `make compare`: it measures, from outside the
// process, what the real bin/sensor-agent costs per reading next to
// Telegraf (when installed) and the article's approach (one POST per
// reading over a fresh TLS connection), all publishing to the AWS IoT
// emulator (publisher/iotemu, in this process) on loopback through a
// byte-counting TCP relay, and prints a Markdown table (issue 11).
//
// Each run: start the client, wait the warm-up (not counted; at least a
// flush interval + 2 s, so the first connection precedes it), sample
// /proc/PID at t0 and t1 ≈ t0 + duration,
// stop it. t0 and t1 are taken just after a message arrives, so the window
// spans whole flush cycles; readings are those carried by the messages
// that arrived in it. CPU is utime+stime; wake-ups are the context
// switches of all threads.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

type scenario struct {
	key      string
	title    string
	interval time.Duration // per sensor
	flush    time.Duration
	oneTopic bool
}

var scenarios = []scenario{
	{"a", "10 × 10 Hz (100 readings/s), topic per sensor, default 10 s flush", 100 * time.Millisecond, 10 * time.Second, false},
	{"b", "10 × 10 Hz (100 readings/s), one topic, 1 s flush", 100 * time.Millisecond, time.Second, true},
	{"c", "10 × 1 Hz (idle), defaults: topic per sensor, 10 s flush", time.Second, 10 * time.Second, false},
}

const sensors = 10

type options struct {
	bin, telegraf, only, dir string
	duration, warmup         time.Duration
	article, goroutines      bool
}

// result is one client's figures over one scenario's steady window.
type result struct {
	client, err                 string
	window                      time.Duration
	cpuS, schedS                float64
	readings, messages, metered int
	payload                     int
	up, down, conns             int64
	rssKiB, hwmKiB              uint64
	switches                    uint64
	threads, goroutines         int
	goroutineTop                string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "article-client" {
		if err := articleClient(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "article-client:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.bin, "bin", "bin/sensor-agent", "the agent binary (make build)")
	flag.StringVar(&o.telegraf, "telegraf", "", "telegraf binary; skipped when absent (default $(go env GOPATH)/bin/telegraf)")
	flag.StringVar(&o.only, "scenarios", "a,b,c", "which scenarios to run: a, b, c")
	flag.StringVar(&o.dir, "dir", "", "work directory (default: a temporary one, removed)")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "measured steady window per run")
	flag.DurationVar(&o.warmup, "warmup", 10*time.Second, "warm-up before the window, not counted (at least the scenario's flush interval + 2s)")
	flag.BoolVar(&o.article, "article", true, "also run the article's approach (one POST per reading, fresh TLS)")
	flag.BoolVar(&o.goroutines, "goroutines", true, "end the agent with SIGQUIT and count its goroutines from the dump")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.duration <= 0 || o.warmup < 0 {
		return errors.New("-duration must be > 0 and -warmup ≥ 0")
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("agent binary: %w (run make build)", err)
	}
	o.bin = bin
	if o.telegraf == "" {
		if gp, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			o.telegraf = filepath.Join(strings.TrimSpace(string(gp)), "bin", "telegraf")
		}
	}
	telegrafNote := ""
	if _, err := os.Stat(o.telegraf); o.telegraf == "" || err != nil {
		telegrafNote = "not installed: go install github.com/influxdata/telegraf/cmd/telegraf@v1.37.2"
		fmt.Fprintf(os.Stderr, "compare: telegraf %s\n", telegrafNote)
		o.telegraf = ""
	}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "sensor-agent-compare-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	pki, err := iotemu.NewPKI(filepath.Join(o.dir, "pki"))
	if err != nil {
		return err
	}
	var col collector
	srv, err := iotemu.Start(iotemu.Options{PKI: pki, OnMessage: col.add})
	if err != nil {
		return fmt.Errorf("start emulator: %w", err)
	}
	defer srv.Close()
	fmt.Fprintf(os.Stderr, "compare: emulator on %s (ALPN) and %s (plain); window %s after %s warm-up; CLK_TCK %g\n",
		srv.ALPNAddr(), srv.PlainAddr(), o.duration, o.warmup, clockTicks())

	rows, err := measureAll(ctx, o, srv, &col)
	if err != nil {
		return err
	}
	printTables(o, rows, telegrafNote)
	return nil
}

// row is one scenario's results by client.
type row struct {
	sc      scenario
	results map[string]*result
}

// measureAll runs every selected scenario for every client. A failing
// agent ends the comparison; a failing peer is shown as failed.
func measureAll(ctx context.Context, o options, srv *iotemu.Server, col *collector) ([]row, error) {
	var rows []row
	for _, sc := range scenarios {
		if !strings.Contains(o.only, sc.key) {
			continue
		}
		r := row{sc: sc, results: map[string]*result{}}
		clients := []string{"agent"}
		if o.telegraf != "" {
			clients = append(clients, "telegraf")
		}
		if o.article {
			clients = append(clients, "article")
		}
		for _, client := range clients {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			fmt.Fprintf(os.Stderr, "compare: scenario %s, %s …\n", sc.key, client)
			res, err := runOne(ctx, o, srv, col, sc, client)
			if err != nil {
				if client == "agent" {
					return nil, fmt.Errorf("scenario %s, agent: %w", sc.key, err)
				}
				res = &result{client: client, err: err.Error()}
				fmt.Fprintf(os.Stderr, "compare: scenario %s, %s: %v\n", sc.key, client, err)
			}
			r.results[client] = res
			printDetail(os.Stderr, sc, res)
		}
		rows = append(rows, r)
	}

	return rows, nil
}

// printTables prints the summary table (the README's) and the detail one.
func printTables(o options, rows []row, telegrafNote string) {
	fmt.Printf("Measured by `make compare` (cmd/sensor-agent/internal/compare) on %s, %d CPU(s), %s per run after a %s warm-up (at least flush + 2 s); 10 simulated sensors (2 values each); AWS bill at $%.2f per million messages (us-east-1), 5 KB metering steps, 30-day month.\n\n",
		hostDesc(), runtime.NumCPU(), o.duration, o.warmup, pricePerMillionUSD)
	fmt.Println("| load | agent | Telegraf 1.37.2 | the article's approach (one POST per reading, fresh TLS) |")
	fmt.Println("|---|---|---|---|")
	for _, r := range rows {
		cells := []string{r.sc.title}
		for _, c := range []string{"agent", "telegraf", "article"} {
			res, ok := r.results[c]
			switch {
			case ok:
				cells = append(cells, res.cell())
			case c == "telegraf" && telegrafNote != "":
				cells = append(cells, telegrafNote)
			default:
				cells = append(cells, "—")
			}
		}
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
	fmt.Println()
	fmt.Println("| load | client | readings | CPU µs/reading | % of a core | RSS / peak MiB | wake-ups/s | threads | goroutines | wire B/reading (up+down) | payload B/reading | wire ÷ payload | messages/reading | AWS messages/month | AWS $/month |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		for _, c := range []string{"agent", "telegraf", "article"} {
			res, ok := r.results[c]
			if !ok || res.err != "" {
				continue
			}
			fmt.Println(res.detailRow(r.sc.key))
		}
	}
}

func agentConfig(sc scenario, dir, port string, pki *iotemu.PKI) string {
	topic := "sensors/{device}/{sensor}"
	if sc.oneTopic {
		topic = "sensors/{device}/all"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `device_id: compare
state_dir: %s/state
log_level: info
endpoint:
  host: localhost
  port: %s
  alpn: "on"
  cert_file: %s
  key_file: %s
  ca_file: %s
publish:
  topic: %q
  flush_interval: %s
sensors:
`, dir, port, pki.Path(iotemu.DeviceCertFile), pki.Path(iotemu.DeviceKeyFile), pki.Path(iotemu.CAFile), topic, sc.flush)
	for i := 1; i <= sensors; i++ {
		fmt.Fprintf(&b, "  - {name: s%02d, driver: sim, interval: %s, values: [temperature_c, humidity_pct]}\n", i, sc.interval)
	}
	return b.String()
}

// telegrafConfig: one inputs.mock per sensor (two sine fields, tag
// sensor), JSON batches to outputs.http with the device certificate; one
// output per sensor for a topic per sensor.
func telegrafConfig(sc scenario, port string, pki *iotemu.PKI) string {
	var b strings.Builder
	fmt.Fprintf(&b, `[agent]
  interval = %q
  round_interval = false
  collection_jitter = "0s"
  flush_interval = %q
  flush_jitter = "0s"
  metric_batch_size = 1000
  metric_buffer_limit = 100000
  omit_hostname = true
  quiet = true
`, sc.interval, sc.flush)
	for i := 1; i <= sensors; i++ {
		fmt.Fprintf(&b, `
[[inputs.mock]]
  metric_name = "sim"
  [inputs.mock.tags]
    sensor = "s%02d"
  [[inputs.mock.sine_wave]]
    name = "temperature_c"
    amplitude = 5.0
    period = 60.0
  [[inputs.mock.sine_wave]]
    name = "humidity_pct"
    amplitude = 20.0
    period = 60.0
`, i)
	}
	output := func(topic, pass string) {
		fmt.Fprintf(&b, `
[[outputs.http]]
  url = "https://127.0.0.1:%s/topics/%s?qos=1"
  method = "POST"
  data_format = "json"
  json_timestamp_units = "1ms"
  use_batch_format = true
  tls_ca = %q
  tls_cert = %q
  tls_key = %q
%s`, port, topic, pki.Path(iotemu.CAFile), pki.Path(iotemu.DeviceCertFile), pki.Path(iotemu.DeviceKeyFile), pass)
	}
	if sc.oneTopic {
		output("sensors/telegraf/all", "")
	} else {
		for i := 1; i <= sensors; i++ {
			output(fmt.Sprintf("sensors/telegraf/s%02d", i), fmt.Sprintf("  [outputs.http.tagpass]\n    sensor = [\"s%02d\"]\n", i))
		}
	}
	return b.String()
}

// countGoroutines counts the goroutines of a Go traceback (SIGQUIT with
// GOTRACEBACK=all) and names, for each, the first function outside the
// runtime and the standard library's plumbing, most frequent first.
func countGoroutines(dump string) (int, string) {
	by := map[string]int{}
	n := 0
	for _, block := range strings.Split(dump, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if len(lines) < 2 || !strings.HasPrefix(lines[0], "goroutine ") {
			continue
		}
		n++
		name := "runtime" // GC workers, finalizers, signals: no frame outside the runtime
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "created by") {
				continue
			}
			f := l
			if i := strings.LastIndexByte(f, '('); i > 0 {
				f = f[:i]
			}
			if !plumbing(f) {
				name = f
				break
			}
			if name == "runtime" && !strings.HasPrefix(f, "runtime.") && !strings.HasPrefix(f, "internal/") {
				name = f // e.g. os/signal.signal_recv, for want of better
			}
		}
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		}
		by[name]++
	}
	type kv struct {
		k string
		n int
	}
	var l []kv
	for k, n := range by {
		l = append(l, kv{k, n})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n || l[i].n == l[j].n && l[i].k < l[j].k })
	var parts []string
	for _, e := range l {
		parts = append(parts, fmt.Sprintf("%d %s", e.n, e.k))
	}
	return n, strings.Join(parts, ", ")
}

// plumbing tells the frames a goroutine waits in (runtime, sync, time,
// net, os/signal, io) from the code that made it wait.
func plumbing(f string) bool {
	for _, p := range []string{"runtime.", "internal/", "sync.", "time.", "net.", "os/signal.", "io.", "bufio.", "bytes.", "crypto/tls.", "syscall.", "os.", "context."} {
		if strings.HasPrefix(f, p) {
			return true
		}
	}
	return false
}

func (r *result) perReadingUS() float64 { return r.cpuS / float64(r.readings) * 1e6 }
func (r *result) core() float64         { return r.cpuS / r.window.Seconds() * 100 }
func (r *result) wakeups() float64      { return float64(r.switches) / r.window.Seconds() }

// payloadPerReading is the messages' own bytes (their JSON bodies) per
// reading: what the wire bytes are measured against (issue 11: within 10 %).
func (r *result) payloadPerReading() float64 { return float64(r.payload) / float64(r.readings) }

// wireRatio is the bytes on the wire, both ways, over the bodies' bytes.
func (r *result) wireRatio() float64 { return float64(r.up+r.down) / float64(r.payload) }

func (r *result) cell() string {
	if r.err != "" {
		return "failed: " + firstLine(r.err)
	}
	_, usd := monthlyBill(r.metered, r.window)
	return fmt.Sprintf("%s µs CPU/reading (%.2f %% of a core), %.1f MiB RSS, %.0f wake-ups/s, %d threads, %.0f wire B/reading (payload %.0f B/reading, wire %.2f× it both ways), %.3g msgs/reading, $%s/month",
		num(r.perReadingUS()), r.core(), float64(r.rssKiB)/1024, r.wakeups(), r.threads,
		float64(r.up)/float64(r.readings), r.payloadPerReading(), r.wireRatio(), float64(r.messages)/float64(r.readings), num(usd))
}

func (r *result) detailRow(key string) string {
	perMonth, usd := monthlyBill(r.metered, r.window)
	g := "—"
	if r.goroutines > 0 {
		g = fmt.Sprint(r.goroutines)
	}
	return fmt.Sprintf("| %s | %s | %d | %s | %.3f | %.1f / %.1f | %.1f | %d | %s | %.0f + %.0f | %.0f | %.2f | %.4f | %s | %s |",
		key, r.client, r.readings, num(r.perReadingUS()), r.core(), float64(r.rssKiB)/1024, float64(r.hwmKiB)/1024,
		r.wakeups(), r.threads, g, float64(r.up)/float64(r.readings), float64(r.down)/float64(r.readings),
		r.payloadPerReading(), r.wireRatio(), float64(r.messages)/float64(r.readings), num(perMonth), num(usd))
}

func printDetail(w io.Writer, sc scenario, r *result) {
	if r.err != "" {
		return
	}
	fmt.Fprintf(w, "compare: %s %s: %.1fs window, %d readings, %d messages (%d metered), payload %d B, CPU %.3fs by utime+stime (%.3fs by schedstat: %s µs/reading), %d context switches, %d TLS connections, up %d B down %d B",
		sc.key, r.client, r.window.Seconds(), r.readings, r.messages, r.metered, r.payload, r.cpuS, r.schedS,
		num(r.schedS/float64(r.readings)*1e6), r.switches, r.conns, r.up, r.down)
	if r.goroutines > 0 {
		fmt.Fprintf(w, "; %d goroutines: %s", r.goroutines, r.goroutineTop)
	}
	fmt.Fprintln(w)
}

// num prints 3 significant digits with thousands separators for ≥ 1000.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	if v >= 1000 {
		s := fmt.Sprintf("%.0f", v)
		var out []byte
		for i := range len(s) {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, s[i])
		}
		return string(out)
	}
	return fmt.Sprintf("%.3g", v)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func hostDesc() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	return "this machine"
}
