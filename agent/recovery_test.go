package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"github.com/sensor-agent/sensor-agent/sensors"
)

// flakyBus fails every transaction while down, without consuming the
// transcript: a sensor that dropped off the bus and came back.
type flakyBus struct {
	mu   sync.Mutex
	pb   *i2ctest.Playback
	down bool
	txs  int
}

func (b *flakyBus) String() string                  { return "flaky" }
func (b *flakyBus) SetSpeed(physic.Frequency) error { return nil }
func (b *flakyBus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.txs++
	if b.down {
		return errors.New("sysfs-i2c: remote I/O error")
	}
	return b.pb.Tx(addr, w, r)
}

func (b *flakyBus) set(down bool) {
	b.mu.Lock()
	b.down = down
	b.mu.Unlock()
}

// The BME280 transcript of periph's own test (23.72 °C, 1009.43 hPa,
// 65.3 %RH): open, then one forced measurement per read.
var (
	bmeOpen = []i2ctest.IO{
		{Addr: 0x76, W: []byte{0xd0}, R: []byte{0x60}},
		{Addr: 0x76, W: []byte{0x88}, R: []byte{0x10, 0x6e, 0x6c, 0x66, 0x32, 0x0, 0x5d, 0x95, 0xb8, 0xd5, 0xd0, 0xb, 0x77, 0x1e, 0x9d, 0xff, 0xf9, 0xff, 0xac, 0x26, 0xa, 0xd8, 0xbd, 0x10, 0x0, 0x4b}},
		{Addr: 0x76, W: []byte{0xe1}, R: []byte{0x6e, 0x1, 0x0, 0x13, 0x5, 0x0, 0x1e}},
		{Addr: 0x76, W: []byte{0xf4, 0x6c, 0xf2, 0x3, 0xf5, 0xa0, 0xf4, 0x6c}},
	}
	bmeRead = []i2ctest.IO{
		{Addr: 0x76, W: []byte{0xF4, 0x6d}},
		{Addr: 0x76, W: []byte{0xF3}, R: []byte{0}},
		{Addr: 0x76, W: []byte{0xf7}, R: []byte{0x4a, 0x52, 0xc0, 0x80, 0x96, 0xc0, 0x7a, 0x76}},
	}
)

// TestBusFaultRecovery runs a real bme280 driver on a bus that fails for a
// while next to a sim sensor: the bme280 is retried, closed and re-opened
// after repeated errors, and reads again once the bus is back; its health
// readings say so; the sim sensor is not delayed by any of it.
func TestBusFaultRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ops []i2ctest.IO
		ops = append(ops, bmeOpen...)
		ops = append(ops, bmeRead...)
		ops = append(ops, bmeRead...)
		ops = append(ops, bmeOpen...) // the re-open after the fault
		for range 3 {
			ops = append(ops, bmeRead...)
		}
		bus := &flakyBus{pb: &i2ctest.Playback{Ops: ops, DontPanic: true}}
		cfg := testConfig(t, "", "", `  - {name: air, driver: bme280, interval: 1s}
  - {name: tick, driver: sim, interval: 1s}
`)
		pub := &fakePub{}
		opts := Options{Env: func(name string, log *slog.Logger) sensors.Env {
			return sensors.Env{Name: name, Logger: log, SysFS: t.TempDir(),
				I2C: func(string) (sensors.I2CBus, error) { return bus, nil }}
		}}
		a := start(t, cfg, pub, opts)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { a.Run(ctx); close(done) }()

		time.Sleep(1500 * time.Millisecond) // two good reads (t = 0 s, 1 s)
		bus.set(true)
		time.Sleep(60 * time.Second) // 1+2+4+8+16+... s of backoff: ≥ 5 errors, a re-open attempt
		bus.set(false)
		time.Sleep(3 * time.Minute) // the next attempt re-opens and reads
		cancel()
		<-done

		var air, tick, healthy, failing int
		for _, m := range pub.messages() {
			for _, r := range m.payload.Readings {
				switch {
				case r.Type == "health" && r.Sensor == "air" && r.Values["healthy"] == 1:
					healthy++
				case r.Type == "health" && r.Sensor == "air":
					failing++
				case r.Sensor == "air":
					air++
					if r.Values["temperature_c"] != 23.72 {
						t.Errorf("air reading %v", r.Values)
					}
				case r.Sensor == "tick":
					tick++
				}
			}
		}
		if air < 3 {
			t.Errorf("%d bme280 readings: want the 2 before the fault and more after the re-open", air)
		}
		if healthy < 2 || failing < 1 {
			t.Errorf("health readings: %d healthy, %d failing; want up, down, up again", healthy, failing)
		}
		// 1 reading per second for 4 min 1.5 s, whatever the bme280 did.
		if tick < 241 {
			t.Errorf("sim sensor: %d readings, want 242: the failing bus delayed it", tick)
		}
	})
}
