package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/agent/spool/spooltest"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// fakePub records messages; fail decides the outcome of a call.
type fakePub struct {
	mu    sync.Mutex
	calls int
	msgs  []msg
	fail  func(n int, payload []byte) error
}

type msg struct {
	at      time.Time
	topic   string
	payload payload
}

type payload struct {
	Device      string `json:"device"`
	Incarnation string `json:"incarnation"`
	SentAt      string `json:"sent_at"`
	Dropped     []struct {
		First, Last, Count uint64
	} `json:"dropped"`
	Readings []struct {
		Seq    uint64             `json:"seq"`
		Sensor string             `json:"sensor"`
		Type   string             `json:"type"`
		Time   string             `json:"time"`
		Values map[string]float64 `json:"values"`
		Error  string             `json:"error"`
	} `json:"readings"`
}

func (p *fakePub) Publish(ctx context.Context, topic string, body []byte) (publisher.Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.fail != nil {
		if err := p.fail(p.calls, body); err != nil {
			return publisher.Result{}, err
		}
	}
	var pl payload
	if err := json.Unmarshal(body, &pl); err != nil {
		return publisher.Result{}, &publisher.Error{Kind: publisher.Permanent, Status: 400, Message: "not JSON: " + err.Error()}
	}
	p.msgs = append(p.msgs, msg{time.Now(), topic, pl})
	return publisher.Result{Status: 200}, nil
}

func (p *fakePub) messages() []msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]msg(nil), p.msgs...)
}

// delivered returns seq → times delivered, failing on a reading published
// under another sensor's topic or without the envelope's ids.
func (p *fakePub) delivered(t *testing.T) map[uint64]int {
	got, _ := p.deliveredKinds(t)
	return got
}

// deliveredKinds is delivered plus the number of distinct measurements
// (health readings excluded).
func (p *fakePub) deliveredKinds(t *testing.T) (map[uint64]int, int) {
	t.Helper()
	out := map[uint64]int{}
	measured := map[uint64]bool{}
	for _, m := range p.messages() {
		if m.payload.Device != "pi-test" || len(m.payload.Incarnation) != 32 {
			t.Errorf("envelope without device/incarnation: %+v", m.payload)
		}
		for _, r := range m.payload.Readings {
			if !strings.HasSuffix(m.topic, "/"+r.Sensor) {
				t.Errorf("reading of %s published to %s", r.Sensor, m.topic)
			}
			out[r.Seq]++
			if r.Type == "" {
				measured[r.Seq] = true
			}
		}
	}
	return out, len(measured)
}

const twoSensors = `
  - {name: a, driver: sim, interval: 100ms, count: 10}
  - {name: b, driver: sim, interval: 250ms, count: 25, values: [level]}
`

func testConfig(t *testing.T, stateDir, publish, sensors string) *config.Config {
	t.Helper()
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	if publish == "" {
		publish = ", max_rate: 0"
	}
	src := fmt.Sprintf(`
device_id: pi-test
state_dir: %s
endpoint: {host: localhost, cert_file: c, key_file: k}
publish: {max_readings: 4, flush_interval: 1s %s}
sensors:
%s`, stateDir, publish, sensors)
	cfg, err := config.Parse("test.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, cfg *config.Config, pub *fakePub, opts Options) *Agent {
	t.Helper()
	opts.Publisher = pub
	if opts.BootID == nil {
		opts.BootID = func() string { return "boot-1" }
	}
	if opts.Clock == nil {
		// Readings without the clock flag, whatever the state of the
		// machine running the tests.
		opts.Clock = &flipClock{}
	}
	a := New(cfg, opts)
	if err := a.Provision(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Cleanup)
	return a
}

// wantAll checks that pub delivered n measurements and that every seq
// from first up to the highest delivered (health readings included) came.
func wantAll(t *testing.T, pub *fakePub, first uint64, n int) {
	t.Helper()
	got, measured := pub.deliveredKinds(t)
	var last uint64
	for seq := range got {
		last = max(last, seq)
	}
	for seq := first; seq <= last; seq++ {
		if got[seq] == 0 {
			t.Errorf("seq %d not delivered", seq)
		}
	}
	if measured != n {
		t.Errorf("%d distinct measurements delivered, want %d", measured, n)
	}
}

func TestExitWhenIdleDeliversEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{}
		a := start(t, testConfig(t, "", "", twoSensors), pub, Options{ExitWhenIdle: true})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantAll(t, pub, 1, 35)
		for seq, n := range pub.delivered(t) {
			if n != 1 {
				t.Errorf("seq %d delivered %d times with no failure", seq, n)
			}
		}
		// 35 measurements and one health reading per sensor.
		if st := a.Stats(); st.ReadingsTaken != 37 || st.ReadingsPublished != 37 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestRetryableErrorsAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{fail: func(n int, _ []byte) error {
			if n <= 3 {
				return &publisher.Error{Kind: publisher.Retry, Status: 503, Message: "unavailable"}
			}
			return nil
		}}
		a := start(t, testConfig(t, "", "", twoSensors), pub, Options{ExitWhenIdle: true})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantAll(t, pub, 1, 35)
		if st := a.Stats(); st.PublishErrors != 3 {
			t.Errorf("publish errors %d, want 3", st.PublishErrors)
		}
	})
}

func TestAuthErrorsKeepDataAndBackOffLong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failedAt []time.Time
		pub := &fakePub{fail: func(n int, _ []byte) error {
			if n <= 2 {
				failedAt = append(failedAt, time.Now())
				return &publisher.Error{Kind: publisher.Auth, Status: 403, Message: "Forbidden"}
			}
			return nil
		}}
		a := start(t, testConfig(t, "", "", twoSensors), pub, Options{ExitWhenIdle: true})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantAll(t, pub, 1, 35)
		if gap := failedAt[1].Sub(failedAt[0]); gap < 45*time.Second {
			t.Errorf("retried %v after a 403: want a long backoff (about a minute)", gap)
		}
	})
}

func TestPermanentRejectionGoesToDeadLetter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{fail: func(n int, _ []byte) error {
			if n == 1 {
				return &publisher.Error{Kind: publisher.Permanent, Status: 400, ErrorType: "InvalidRequestException", Message: "bad"}
			}
			return nil
		}}
		cfg := testConfig(t, "", "", twoSensors)
		a := start(t, cfg, pub, Options{ExitWhenIdle: true})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(cfg.Spool.Dir, DeadLetterFile))
		if err != nil {
			t.Fatalf("no dead-letter file: %v", err)
		}
		defer f.Close()
		var dead []uint64
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var dl DeadLetter
			if err := json.Unmarshal(sc.Bytes(), &dl); err != nil {
				t.Fatal(err)
			}
			if dl.Status != 400 || !strings.Contains(dl.Reason, "InvalidRequestException") || len(dl.Payload) == 0 {
				t.Errorf("dead letter %+v", dl)
			}
			dead = append(dead, dl.Seqs...)
		}
		got := pub.delivered(t)
		var last uint64
		for _, s := range dead {
			got[s]++
		}
		for s := range got {
			last = max(last, s)
		}
		for s := uint64(1); s <= last; s++ {
			if got[s] == 0 {
				t.Errorf("seq %d neither delivered nor dead-lettered", s)
			}
		}
		if st := a.Stats(); st.DeadLettered != int64(len(dead)) || len(dead) == 0 {
			t.Errorf("dead-lettered %d, file has %d", st.DeadLettered, len(dead))
		}
	})
}

func TestTooLargeIsSplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{fail: func(_ int, body []byte) error {
			if strings.Count(string(body), `"seq":`) > 1 {
				return &publisher.Error{Kind: publisher.Permanent, Status: 413, Message: "too large"}
			}
			return nil
		}}
		a := start(t, testConfig(t, "", "", twoSensors), pub, Options{ExitWhenIdle: true})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantAll(t, pub, 1, 35)
		if a.Stats().DeadLettered != 0 {
			t.Error("split messages must not be dead-lettered")
		}
	})
}

func TestShutdownKeepsEverythingForTheNextRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		state := t.TempDir()
		down := &fakePub{fail: func(int, []byte) error {
			return &publisher.Error{Kind: publisher.Retry, Message: "connection refused"}
		}}
		a := start(t, testConfig(t, state, "", "  - {name: a, driver: sim, interval: 100ms}\n"), down, Options{ShutdownTimeout: time.Second})
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		if err := a.Run(ctx); err != nil {
			t.Fatalf("shutdown with unsent readings must still exit cleanly: %v", err)
		}
		a.Cleanup()
		taken := uint64(a.Stats().ReadingsTaken) - 1 // one health reading
		if taken < 20 {
			t.Fatalf("only %d readings taken", taken)
		}
		// Same boot: the next run continues the numbering without a gap
		// and sends the earlier readings.
		up := &fakePub{}
		b := start(t, testConfig(t, state, "", "  - {name: a, driver: sim, interval: 100ms, count: 3}\n"), up, Options{ExitWhenIdle: true})
		if err := b.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantAll(t, up, 1, int(taken)+3)
	})
}

func TestHealthReadings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{}
		// Reads 3 and 4 of 10 fail: healthy, failing, healthy again.
		cfg := testConfig(t, "", "", "  - {name: a, driver: sim, interval: 100ms, count: 10, fail_every: 3}\n")
		a := start(t, cfg, pub, Options{ExitWhenIdle: true})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		var states []string
		for _, m := range pub.messages() {
			for _, r := range m.payload.Readings {
				if r.Type == "health" {
					states = append(states, fmt.Sprintf("%v/%v/%v", r.Values["healthy"], r.Values["consecutive_errors"], r.Error != ""))
				}
			}
		}
		// fail_every 3: reads 3, 6 and 9 fail, each followed by a success.
		want := []string{"1/0/false", "0/1/true", "1/0/false", "0/1/true", "1/0/false", "0/1/true", "1/0/false"}
		if strings.Join(states, " ") != strings.Join(want, " ") {
			t.Errorf("health readings %v\nwant %v", states, want)
		}
		if st := a.Stats(); st.ReadingsTaken != 14 {
			t.Errorf("taken %d, want 7 measurements and 7 health readings", st.ReadingsTaken)
		}
	})
}

func TestLiveFirstThenBacklogAtMaxRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		outage := 20 * time.Second
		pub := &fakePub{fail: func(int, []byte) error {
			if time.Since(t0) < outage {
				return &publisher.Error{Kind: publisher.Retry, Message: "offline"}
			}
			return nil
		}}
		cfg := testConfig(t, "", ", max_rate: 2", "  - {name: a, driver: sim, interval: 100ms, count: 400}\n")
		a := start(t, cfg, pub, Options{ExitWhenIdle: true})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		msgs := pub.messages()
		wantAll(t, pub, 1, 400)
		// The first message after the outage carries new readings, not
		// the backlog that built up during it.
		first := msgs[0].payload.Readings
		if first[0].Seq == 1 {
			t.Errorf("first message after the outage starts at seq 1: want the newest readings first")
		}
		// Backlog messages (seq below the first live one) go oldest first,
		// no faster than max_rate.
		var backlog []msg
		for _, m := range msgs {
			if m.payload.Readings[0].Seq < first[0].Seq {
				backlog = append(backlog, m)
			}
		}
		if n := len(backlog); n < 3 || backlog[0].payload.Readings[0].Seq != 1 {
			t.Fatalf("%d backlog messages; want several, starting at seq 1", n)
		}
		for i := 1; i < len(backlog); i++ {
			if backlog[i].payload.Readings[0].Seq <= backlog[i-1].payload.Readings[0].Seq {
				t.Errorf("backlog not oldest first: %d after %d", backlog[i].payload.Readings[0].Seq, backlog[i-1].payload.Readings[0].Seq)
			}
			if gap := backlog[i].at.Sub(backlog[i-1].at); gap < 500*time.Millisecond {
				t.Errorf("backlog messages %v apart: faster than max_rate 2/s", gap)
			}
		}
	})
}

func TestDiskFullKeepsReadingsInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fsys := spooltest.NewFaultFS()
		// The disk is full for a while after the spool is set up; the
		// store tries the spool again after 30 s and finds room.
		fsys.Inject(spooltest.Fault{Op: spooltest.OpWrite, Match: "seg-*", Skip: 2, Times: 1, Err: syscall.ENOSPC})
		pub := &fakePub{}
		var logs syncBuf
		log := slog.New(slog.NewTextHandler(&logs, nil))
		cfg := testConfig(t, "", "", "  - {name: a, driver: sim, interval: 500ms, count: 100}\n")
		a := start(t, cfg, pub, Options{ExitWhenIdle: true, SpoolFS: fsys, Logger: log})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantAll(t, pub, 1, 100)
		for _, want := range []string{"spool cannot be written: keeping readings in memory", "spool writable again"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		}
	})
}

func TestMemoryFallbackReportsDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fsys := spooltest.NewFaultFS()
		fsys.Inject(spooltest.Fault{Op: spooltest.OpWrite, Match: "seg-*", Times: -1, Err: syscall.EROFS})
		cfg := testConfig(t, "", "", "  - {name: a, driver: sim, interval: 100ms, count: 60}\n")
		cfg.Publish.QueueBytes = 2048 // about 20 readings
		down := true
		pub := &fakePub{fail: func(int, []byte) error {
			if down {
				return &publisher.Error{Kind: publisher.Retry, Message: "offline"}
			}
			return nil
		}}
		go func() {
			time.Sleep(10 * time.Second) // past the last reading
			pub.mu.Lock()
			down = false
			pub.mu.Unlock()
		}()
		a := start(t, cfg, pub, Options{ExitWhenIdle: true, SpoolFS: fsys})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		got := pub.delivered(t)
		var last uint64
		for s := range got {
			last = max(last, s)
		}
		var reported uint64
		for _, m := range pub.messages() {
			for _, d := range m.payload.Dropped {
				reported += d.Count
			}
		}
		if len(got) == 0 || uint64(len(got)) == last {
			t.Fatalf("%d of %d delivered: want the oldest dropped by the 2 KiB bound", len(got), last)
		}
		if reported != last-uint64(len(got)) {
			t.Errorf("dropped reported %d, lost %d", reported, last-uint64(len(got)))
		}
	})
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
