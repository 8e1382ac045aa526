package sensors

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c/i2creg"
)

// TestDefaultEnv runs against the real host. On a machine without I²C or
// GPIO (CI) it checks the error messages; on a Pi it checks bus sharing.
func TestDefaultEnv(t *testing.T) {
	env := DefaultEnv("greenhouse", nil)
	if env.Name != "greenhouse" || env.Logger == nil || env.SysFS != "/sys" || env.I2C == nil || env.Pin == nil {
		t.Fatalf("DefaultEnv = %+v", env)
	}
	if err := InitHost(slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}

	a, errA := env.I2C("1")
	if len(i2creg.All()) == 0 {
		wantErr(t, errA, `open i2c bus "1": no i2c bus on this host`, "i2creg: no bus found")
		// The driver wraps it with the sensor and device.
		d, _ := Lookup("bme280")
		_, err := d.Open(context.Background(), env, d.NewOpts())
		wantErr(t, err, `greenhouse: bme280 /dev/i2c-1 0x76: open: open i2c bus "1": no i2c bus on this host`)
	} else if errA == nil {
		b, err := env.I2C("I2C1")
		if err != nil || a != b {
			t.Errorf(`"1" and "I2C1" opened different buses (%v)`, err)
		}
		t.Cleanup(func() {
			if err := CloseBuses(); err != nil {
				t.Error(err)
			}
		})
	}

	_, err := env.Pin("P1_11")
	if len(gpioreg.All()) == 0 {
		wantErr(t, err, `gpio pin "P1_11": no gpio pins on this host`)
	} else {
		wantErr(t, err, `gpio pin "P1_11" not found: use the kernel line name, e.g. "GPIO17"`)
	}
}

func TestCloseBusesEmpty(t *testing.T) {
	if err := CloseBuses(); err != nil {
		t.Fatal(err)
	}
	if got := canonicalBus("no-such-bus"); !strings.Contains(got, "no-such-bus") {
		t.Errorf("canonicalBus = %q", got)
	}
}
