package spool_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/spool"
	"github.com/sensor-agent/sensor-agent/agent/spool/spooltest"
)

// env is a spool on a FaultFS with a manual clock and captured logs.
type env struct {
	t     testing.TB
	fs    *spooltest.FaultFS
	dir   string
	opts  spool.Options
	s     *spool.Spool
	clock *clock
	logs  *syncBuffer
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tiny options: 1 KiB segments, 4 KiB cap, so a few dozen records rotate
// and fill the spool.
func tiny(o spool.Options) spool.Options {
	o.SegmentBytes, o.MaxBytes = 1024, 4096
	return spool.WithMinSegment(o, 256)
}

func newEnv(t testing.TB, mod func(spool.Options) spool.Options) *env {
	t.Helper()
	e := &env{t: t, fs: spooltest.NewFaultFS(), dir: "/data/spool",
		clock: &clock{t: time.Date(2026, 11, 26, 13, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	e.opts = spool.Options{Dir: e.dir, FS: e.fs, Now: e.clock.now,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		e.opts = mod(e.opts)
	}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	s, err := spool.Open(e.opts)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.s = s
}

// reopen restarts the "process": how is "close", "crash" or "power".
func (e *env) reopen(how string) {
	e.t.Helper()
	switch how {
	case "close":
		if err := e.s.Close(); err != nil {
			e.t.Fatalf("Close: %v", err)
		}
	case "crash":
		e.fs.Crash()
	case "power":
		e.fs.PowerCut()
	default:
		e.t.Fatalf("reopen %q", how)
	}
	e.open()
}

func payload(seq uint64) []byte {
	return fmt.Appendf(nil, "sensors/pi-01/s%d\n{\"seq\":%d,\"values\":{\"temperature_c\":21.5}}", seq%3, seq)
}

func recs(seqs ...uint64) []spool.Record {
	out := make([]spool.Record, len(seqs))
	for i, s := range seqs {
		out[i] = spool.Record{Seq: s, Data: payload(s)}
	}
	return out
}

func seqRange(lo, hi uint64) []uint64 {
	var out []uint64
	for s := lo; s <= hi; s++ {
		out = append(out, s)
	}
	return out
}

// append appends seqs in groups of up to 5 (a group must fit in one of
// the tiny segments).
func (e *env) append(seqs ...uint64) {
	e.t.Helper()
	for len(seqs) > 0 {
		n := min(len(seqs), 5)
		if err := e.s.Append(recs(seqs[:n]...)); err != nil {
			e.t.Fatalf("Append %v: %v", seqs[:n], err)
		}
		seqs = seqs[n:]
	}
}

func (e *env) sync() {
	e.t.Helper()
	if err := e.s.Sync(); err != nil {
		e.t.Fatalf("Sync: %v", err)
	}
}

// pending returns the seqs Pending yields, checking data and order.
func (e *env) pending() []uint64 {
	e.t.Helper()
	return pendingOf(e.t, e.s, 0, 0)
}

func pendingOf(t testing.TB, s *spool.Spool, after uint64, max int) []uint64 {
	t.Helper()
	var out []uint64
	err := s.Pending(after, max, func(r spool.Record) bool {
		if len(out) > 0 && r.Seq <= out[len(out)-1] {
			t.Fatalf("Pending not increasing: %d after %d", r.Seq, out[len(out)-1])
		}
		if !bytes.Equal(r.Data, payload(r.Seq)) {
			t.Fatalf("Pending: record %d has data %q", r.Seq, r.Data)
		}
		out = append(out, r.Seq)
		return true
	})
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return out
}

func (e *env) wantPending(want []uint64) {
	e.t.Helper()
	if got := e.pending(); !slices.Equal(got, want) {
		e.t.Fatalf("pending = %v, want %v", got, want)
	}
}

func (e *env) segFiles() []string {
	var out []string
	for _, n := range e.fs.Files(e.dir) {
		if len(n) == len("seg-0000000000000001.log") && n[:4] == "seg-" && n[len(n)-4:] == ".log" {
			out = append(out, n)
		}
	}
	return out
}

// segFirsts returns the first seqs of the segments, from their names.
func (e *env) segFirsts() []uint64 {
	var out []uint64
	for _, n := range e.segFiles() {
		v, err := strconv.ParseUint(n[4:20], 16, 64)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func (e *env) path(name string) string { return e.dir + "/" + name }
