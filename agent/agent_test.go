package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// fakePub records messages; fail decides the outcome of call n (1-based).
type fakePub struct {
	mu    sync.Mutex
	calls int
	msgs  []msg
	fail  func(n int) error
}

type msg struct {
	topic   string
	payload []byte
}

func (p *fakePub) Publish(ctx context.Context, topic string, payload []byte) (publisher.Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.fail != nil {
		if err := p.fail(p.calls); err != nil {
			return publisher.Result{}, err
		}
	}
	p.msgs = append(p.msgs, msg{topic, append([]byte(nil), payload...)})
	return publisher.Result{Status: 200}, nil
}

type payload struct {
	Device   string `json:"device"`
	Readings []struct {
		Seq    uint64             `json:"seq"`
		Sensor string             `json:"sensor"`
		Time   string             `json:"time"`
		Values map[string]float64 `json:"values"`
	} `json:"readings"`
}

// delivered decodes every message and returns seq → sensor, failing on a
// reading published under another sensor's topic.
func (p *fakePub) delivered(t *testing.T) map[uint64]string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[uint64]string{}
	for _, m := range p.msgs {
		var pl payload
		if err := json.Unmarshal(m.payload, &pl); err != nil {
			t.Fatalf("bad payload %s: %v", m.payload, err)
		}
		for _, r := range pl.Readings {
			if !strings.HasSuffix(m.topic, "/"+r.Sensor) {
				t.Errorf("reading of %s published to %s", r.Sensor, m.topic)
			}
			out[r.Seq] = r.Sensor
		}
	}
	return out
}

func testConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	src := fmt.Sprintf(`
device_id: pi-test
state_dir: %s
endpoint: {host: localhost, cert_file: c, key_file: k}
publish: {max_readings: 4, flush_interval: 1s}
sensors:
  - {name: a, driver: sim, interval: 100ms, count: 10}
  - {name: b, driver: sim, interval: 250ms, count: 25, values: [level]}
%s`, t.TempDir(), extra)
	cfg, err := config.Parse("test.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runAgent(t *testing.T, cfg *config.Config, pub *fakePub, opts Options) (*Agent, error) {
	t.Helper()
	opts.Publisher = pub
	a := New(cfg, opts)
	if err := a.Provision(); err != nil {
		t.Fatal(err)
	}
	defer a.Cleanup()
	return a, a.Run(t.Context())
}

func TestExitWhenIdleDeliversEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{}
		a, err := runAgent(t, testConfig(t, ""), pub, Options{ExitWhenIdle: true})
		if err != nil {
			t.Fatal(err)
		}
		got := pub.delivered(t)
		if len(got) != 35 {
			t.Fatalf("%d readings delivered, want 35", len(got))
		}
		for seq := uint64(1); seq <= 35; seq++ {
			if _, ok := got[seq]; !ok {
				t.Errorf("seq %d missing", seq)
			}
		}
		if st := a.Stats(); st.ReadingsTaken != 35 || st.ReadingsPublished != 35 || st.ReadingsDropped != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestRetryableErrorsAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{fail: func(n int) error {
			if n <= 3 {
				return &publisher.Error{Kind: publisher.Retry, Status: 503, Message: "unavailable"}
			}
			return nil
		}}
		a, err := runAgent(t, testConfig(t, ""), pub, Options{ExitWhenIdle: true})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(pub.delivered(t)); n != 35 {
			t.Fatalf("%d delivered, want 35", n)
		}
		if st := a.Stats(); st.PublishErrors != 3 {
			t.Errorf("publish errors %d, want 3", st.PublishErrors)
		}
	})
}

func TestAuthErrorsKeepData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{fail: func(n int) error {
			if n <= 2 {
				return &publisher.Error{Kind: publisher.Auth, Status: 403, Message: "Forbidden"}
			}
			return nil
		}}
		start := time.Now()
		if _, err := runAgent(t, testConfig(t, ""), pub, Options{ExitWhenIdle: true}); err != nil {
			t.Fatal(err)
		}
		if n := len(pub.delivered(t)); n != 35 {
			t.Fatalf("%d delivered, want 35: auth errors must not drop data", n)
		}
		if waited := time.Since(start); waited < time.Minute {
			t.Errorf("waited only %v after auth errors: want a long backoff", waited)
		}
	})
}

func TestPermanentErrorsDropOnlyThatMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{fail: func(n int) error {
			if n == 1 {
				return &publisher.Error{Kind: publisher.Permanent, Status: 400, Message: "bad"}
			}
			return nil
		}}
		a, err := runAgent(t, testConfig(t, ""), pub, Options{ExitWhenIdle: true})
		if err != nil {
			t.Fatal(err)
		}
		st := a.Stats()
		if got := len(pub.delivered(t)); int64(got) != 35-st.ReadingsDropped || st.ReadingsDropped == 0 {
			t.Fatalf("delivered %d, dropped %d: want 35 in all and the rejected message counted", got, st.ReadingsDropped)
		}
	})
}

func TestShutdownReportsUnsentReadings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{fail: func(int) error {
			return &publisher.Error{Kind: publisher.Retry, Message: "connection refused"}
		}}
		cfg := testConfig(t, "")
		a := New(cfg, Options{Publisher: pub, ShutdownTimeout: time.Second})
		if err := a.Provision(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		err := a.Run(ctx)
		if err == nil || !strings.Contains(err.Error(), "not published") {
			t.Fatalf("err = %v, want a count of unpublished readings", err)
		}
		if st := a.Stats(); st.ReadingsTaken == 0 {
			t.Fatal("nothing was taken")
		}
	})
}

func TestFullQueueDropsOldestAndSamplingGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		block := &fakePub{fail: func(int) error {
			return &publisher.Error{Kind: publisher.Retry, Message: "offline"}
		}}
		cfg := testConfig(t, "")
		cfg.Publish.QueueBytes = 1024
		cfg.Publish.MaxBytes = 1024
		a := New(cfg, Options{Publisher: block, ShutdownTimeout: time.Millisecond})
		if err := a.Provision(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		a.Run(ctx)
		st := a.Stats()
		if st.ReadingsTaken != 35 {
			t.Errorf("taken %d, want 35: sampling must not block on a full queue", st.ReadingsTaken)
		}
		if st.ReadingsDropped == 0 {
			t.Error("nothing dropped from a 1 KiB queue")
		}
	})
}
