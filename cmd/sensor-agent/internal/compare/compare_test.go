//go:build linux

package main

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A name with spaces and ')' must not shift the fields.
	line := "4242 (sensor) agent)) S 1 4242 4242 0 -1 4194560 1203 0 0 0 731 152 0 0 20 0 8 0 12345 1264451584 4312 18446744073709551615\n"
	ut, st, err := parseStat(line)
	if err != nil || ut != 731 || st != 152 {
		t.Fatalf("parseStat = %d, %d, %v; want 731, 152", ut, st, err)
	}
	if _, _, err := parseStat("4242 (x) S 1 2"); err == nil {
		t.Error("a short line parsed")
	}
	// This process's own line parses.
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip(err)
	}
	if _, _, err := parseStat(string(b)); err != nil {
		t.Error(err)
	}
}

func TestParseStatus(t *testing.T) {
	text := "Name:\tsensor-agent\nVmHWM:\t   18432 kB\nVmRSS:\t   17408 kB\nThreads:\t8\n" +
		"voluntary_ctxt_switches:\t1200\nnonvoluntary_ctxt_switches:\t34\n"
	m, err := parseStatus(text)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"VmHWM": 18432, "VmRSS": 17408, "Threads": 8, "voluntary_ctxt_switches": 1200, "nonvoluntary_ctxt_switches": 34}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %d, want %d", k, m[k], v)
		}
	}
	if _, err := parseStatus("VmRSS:\tlots kB\n"); err == nil {
		t.Error("a bad number parsed")
	}
	if ns, err := parseSchedstat("123456789 2000 17\n"); err != nil || ns != 123456789 {
		t.Errorf("parseSchedstat = %d, %v", ns, err)
	}
	s, err := sample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.threads < 1 || s.rssKiB == 0 || s.taskCount != s.threads {
		t.Errorf("sample(self) = %+v", s)
	}
}

func TestMetering(t *testing.T) {
	for _, c := range []struct{ size, want int }{
		{0, 1}, {1, 1}, {5120, 1}, {5121, 2}, {8 * 1024, 2}, {10240, 2}, {10241, 3}, {128 * 1024, 26},
	} {
		if got := meteredMessages(c.size); got != c.want {
			t.Errorf("meteredMessages(%d) = %d, want %d", c.size, got, c.want)
		}
	}
	// 1 message/s for a 30-day month: 2,592,000 messages, $2.59.
	perMonth, usd := monthlyBill(60, time.Minute)
	if perMonth != 2592000 || math.Abs(usd-2.592) > 1e-9 {
		t.Errorf("monthlyBill = %v, %v", perMonth, usd)
	}
	if p, u := monthlyBill(5, 0); p != 0 || u != 0 {
		t.Error("an empty window billed")
	}
}

func TestReadingTimes(t *testing.T) {
	agent := `{"device":"d","readings":[{"seq":1,"time":"2026-12-04T06:00:00.100Z","values":{}},{"seq":2,"time":"2026-12-04T06:00:00.200Z"}]}`
	single := `{"device":"a","sensor":"s01","time":"2026-12-04T06:00:00.300Z","values":{}}`
	telegraf := `{"metrics":[{"fields":{"x":1},"name":"sim","tags":{},"timestamp":1796364000400}]}`
	for _, c := range []struct {
		p    string
		want int
	}{{agent, 2}, {single, 1}, {telegraf, 1}, {"not json", 0}} {
		if got := readingTimes([]byte(c.p)); len(got) != c.want {
			t.Errorf("%.30s: %d readings, want %d", c.p, len(got), c.want)
		}
	}
	var col collector
	t0 := time.Date(2026, 12, 4, 6, 0, 0, 150e6, time.UTC)
	col.msgs = []arrival{{at: t0, size: 6000, readings: readingTimes([]byte(agent))}, {at: t0.Add(time.Hour), size: 10, readings: readingTimes([]byte(single))}}
	r, m, metered, payload := col.window(t0, t0.Add(time.Second))
	if !col.arrivedAfter(t0) || col.arrivedAfter(t0.Add(2*time.Hour)) {
		t.Error("arrivedAfter")
	}
	if r != 2 || m != 1 || metered != 2 || payload != 6000 { // the first message arrived in the window, the second an hour later
		t.Errorf("window = %d readings, %d messages, %d metered, %d B", r, m, metered, payload)
	}
}

func TestCountGoroutines(t *testing.T) {
	dump := strings.Join([]string{
		"SIGQUIT: quit\nPC=0x0 m=0 sigcode=0\n",
		"goroutine 1 gp=0x1 m=nil [select]:\nruntime.gopark(0x1)\n\t/usr/local/go/src/runtime/proc.go:435\ngithub.com/x/agent.(*Agent).sendLoop(0x2)\n\t/src/agent/sender.go:10\ncreated by main.main",
		"goroutine 7 gp=0x1 m=nil [chan receive]:\nruntime.gopark(0x1)\n\t/a\ntime.Sleep(0x1)\n\t/b\ngithub.com/x/sensors.(*Sim).Read(0x3)\n\t/c",
		"goroutine 8 gp=0x1 m=nil [select]:\nruntime.gopark(0x1)\n\t/a\ngithub.com/x/agent.(*Agent).sendLoop(0x2)\n\t/d",
		"goroutine 2 gp=0x1 m=nil [force gc (idle)]:\nruntime.gopark(0x1)\n\t/a\nruntime.forcegchelper()\n\t/b\ncreated by runtime.init.7 in goroutine 1",
		"goroutine 153 gp=0x1 m=nil [IO wait]:\nruntime.gopark(0x1)\n\t/a\nbytes.(*Buffer).ReadFrom(0x1)\n\t/b\nnet/http.(*persistConn).Read(0x1)\n\t/c",
	}, "\n\n")
	n, top := countGoroutines(dump)
	if n != 5 || top != "2 agent.(*Agent).sendLoop, 1 http.(*persistConn).Read, 1 runtime, 1 sensors.(*Sim).Read" {
		t.Errorf("countGoroutines = %d, %q", n, top)
	}
}

func TestWireRatio(t *testing.T) {
	// 10 readings in one 1,400-byte message, 1,550 B up and 290 B down.
	r := &result{client: "agent", readings: 10, messages: 1, metered: 1, payload: 1400, up: 1550, down: 290, window: time.Second}
	if got := r.payloadPerReading(); got != 140 {
		t.Errorf("payloadPerReading = %v, want 140", got)
	}
	if got := r.wireRatio(); got < 1.314 || got > 1.315 {
		t.Errorf("wireRatio = %v, want 1840/1400", got)
	}
	if row := r.detailRow("c"); !strings.Contains(row, "| 155 + 29 | 140 | 1.31 |") {
		t.Errorf("detailRow = %s", row)
	}
}
