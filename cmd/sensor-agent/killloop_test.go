package main

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// TestKillLoop is the crash test of the "never lose a reading" promise: the
// real binary samples a sim sensor at 50 Hz against an emulator that fails,
// throttles and loses replies; it is SIGKILLed at random moments at least
// 30 times and lives through a 30-second endpoint outage. At the end every
// seq from the first to the last must have been delivered; duplicates
// (at-least-once) are counted and reported.
//
// SENSOR_AGENT_KILLS sets the number of kills (default 30);
// SENSOR_AGENT_KILL_SEED replays a run.
func TestKillLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("kill loop takes about a minute and a half; not in -short")
	}
	kills, seed := killsAndSeed("SENSOR_AGENT_KILLS", 30, "SENSOR_AGENT_KILL_SEED")
	t.Logf("kill loop: %d kills, seed %d (SENSOR_AGENT_KILL_SEED=%d replays it)", kills, seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	srv, pki := startEmulator(t, iotemu.Options{PlainAddr: iotemu.Off, Seed: int64(seed),
		Rates: iotemu.Rates{Status: map[int]float64{429: 0.05, 500: 0.03, 503: 0.03}, Lose: 0.05}})
	cfg := agentConfig{device: "pi-kill", stateDir: t.TempDir(), addr: srv.ALPNAddr(), alpn: "on", pki: pki,
		format: "batch", maxReadings: 50, flushInterval: "200ms",
		sensors: "  - {name: fast, driver: sim, interval: 20ms}\n",
		extra:   "spool: {sync_interval: 1s}\n", health: true}
	path := cfg.write(t)

	// Kills, with the endpoint going down for 30 s in the middle of them.
	outageAt := kills / 2
	for i := range kills {
		if i == outageAt {
			if err := srv.SetDown(true); err != nil {
				t.Fatal(err)
			}
			t.Logf("kill %d: endpoint down for 30s", i)
			outageEnd := time.Now().Add(30 * time.Second)
			// Keep killing during the outage: the agent must keep
			// every reading through restarts without a network.
			for time.Now().Before(outageEnd) {
				killAfter(t, ctx, path, time.Duration(500+rng.IntN(2500))*time.Millisecond)
			}
			if err := srv.SetDown(false); err != nil {
				t.Fatal(err)
			}
		}
		killAfter(t, ctx, path, time.Duration(100+rng.IntN(1400))*time.Millisecond)
	}

	// Last run: a finite sensor, so the agent exits once everything
	// stored, from every earlier run, is delivered.
	final := cfg
	final.sensors = "  - {name: fast, driver: sim, interval: 20ms, count: 50}\n"
	r := start(t, ctx, nil, "run", "-exit-when-idle", "-config", final.write(t)).wait()
	if r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	rs := decodeMessages(t, srv.Messages(), "pi-kill", "batch", 50, time.Time{}, time.Now().Add(time.Minute))
	var hi uint64
	for _, x := range rs {
		hi = max(hi, x.Seq)
	}
	// Every seq 1..hi delivered at least once; count the extra copies.
	times := make([]int, hi+1)
	for _, x := range rs {
		times[x.Seq]++
	}
	dups, worst := 0, 0
	var missing []uint64
	for s := uint64(1); s <= hi; s++ {
		if times[s] == 0 {
			missing = append(missing, s)
		}
		dups += max(times[s]-1, 0)
		worst = max(worst, times[s])
	}
	if len(missing) > 0 {
		t.Errorf("%d seqs never delivered: %v", len(missing), missing)
	}
	t.Logf("kill loop: the most copies of one reading: %d", worst)
	t.Logf("kill loop: %d readings (seq 1..%d) delivered across %d kills and a 30s outage; %d duplicates (%.2f%%) in %d messages; emulator: %d requests",
		hi, hi, kills, dups, 100*float64(dups)/float64(hi), len(srv.Messages()), srv.Requests())
}

// killAfter runs the agent and SIGKILLs it after d.
func killAfter(t *testing.T, ctx context.Context, config string, d time.Duration) {
	t.Helper()
	p := start(t, ctx, nil, "run", "-config", config)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-p.done:
		t.Fatalf("agent exited by itself before the kill:\n%s", p.stderr)
	}
	p.signal(syscall.SIGKILL)
	<-p.done
}

// killsAndSeed reads a number of kills (default def) and a seed (default:
// the clock) from the environment, so a run can be made longer or replayed.
func killsAndSeed(killsVar string, def int, seedVar string) (int, uint64) {
	kills := def
	if v := os.Getenv(killsVar); v != "" {
		kills, _ = strconv.Atoi(v)
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(seedVar); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	return kills, seed
}
