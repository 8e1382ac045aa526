package agent

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sensor-agent/sensor-agent/sensors"
)

// TestSnapshot: after a run, the snapshot has each sensor's last values
// and health, what was published, and an empty spool; a sensor that
// fails to open shows as failing, and the agent as degraded.
func TestSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{}
		a := start(t, testConfig(t, "", "", twoSensors+"  - {name: c, driver: sim, interval: 100ms, count: 1, fail_open: 3}\n"), pub,
			Options{ExitWhenIdle: true})
		if err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		s := a.Snapshot()
		if len(s.Sensors) != 3 || s.Device != "pi-test" || s.Publish.Readings == 0 || s.Publish.LastSuccess.IsZero() || s.Publish.LastError != "" {
			t.Fatalf("snapshot %+v", s)
		}
		want := sensors.SimValues(&sensors.SimOpts{Waveform: "sine", Period: 60, Values: []string{"temperature_c", "humidity_pct"}}, 9)
		if a0 := s.Sensors[0]; a0.Name != "a" || !a0.Healthy || !a0.Done || a0.Interval != "100ms" || a0.LastReading.IsZero() ||
			a0.Values["temperature_c"] != want["temperature_c"] || len(a0.Values) != 2 {
			t.Errorf("sensor a: %+v, want values %v", a0, want)
		}
		if c := s.Sensors[2]; !c.Healthy || !c.Done || len(c.Values) != 2 { // opened at the fourth try
			t.Errorf("sensor c: %+v", c)
		}
		if s.Spool.Pending != 0 || s.Spool.MemoryMode || s.Spool.DiskBytes == 0 {
			t.Errorf("spool %+v", s.Spool)
		}
		if p := s.Problems(); len(p) != 0 {
			t.Errorf("problems %q", p)
		}
	})
}

// TestSnapshotFailing: a sensor that never opens is failing, with its
// error; Problems names it.
func TestSnapshotFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := &fakePub{}
		a := start(t, testConfig(t, "", "", "  - {name: x, driver: sim, interval: 100ms, fail_open: 1000}\n"), pub, Options{})
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_ = a.Run(ctx)
		s := a.Snapshot()
		if x := s.Sensors[0]; x.Healthy || x.ConsecutiveErrors == 0 || x.LastError == "" || !x.LastReading.IsZero() {
			t.Errorf("sensor x: %+v", x)
		}
		if p := s.Problems(); len(p) != 1 {
			t.Errorf("problems %q", p)
		}
	})
}

// TestNoteDoesNotAllocate: keeping the last values costs no allocation
// per reading once the sensor's value names are known.
func TestNoteDoesNotAllocate(t *testing.T) {
	st := &sensorState{}
	v := sensors.Values{"temperature_c": 21.5, "humidity_pct": 40}
	now := time.Now()
	st.note(now, v)
	if n := testing.AllocsPerRun(100, func() { st.note(now, v) }); n != 0 {
		t.Errorf("%v allocations per reading", n)
	}
}
