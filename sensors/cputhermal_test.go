package sensors

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// thermalZone writes <sysfs>/class/thermal/<zone>/temp.
func thermalZone(t *testing.T, sysfs, zone, content string) string {
	t.Helper()
	dir := filepath.Join(sysfs, "class", "thermal", zone)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "temp")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCPUThermalRead(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          float64
		err           string // "" means success
	}{
		{"typical", "48312\n", 48.31, ""},
		{"no newline", "51000", 51, ""},
		{"below zero", "-5250\n", -5.25, ""},
		{"garbage", "hot\n", 0, "t: cpu_thermal thermal_zone0: read: parse "},
		{"empty", "", 0, `strconv.Atoi: parsing "": invalid syntax`},
		{"implausible", "200000\n", 0, "t: cpu_thermal thermal_zone0: read: implausible temperature_c 200 (valid -40..125)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv(t)
			thermalZone(t, env.SysFS, "thermal_zone0", tc.content)
			d, _ := Lookup("cpu_thermal")
			s, err := open(t, env, "cpu_thermal", d.NewOpts())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			v, err := s.Read(context.Background())
			if tc.err != "" {
				wantErr(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != 1 || v[TemperatureC] != tc.want {
				t.Errorf("got %v, want temperature_c %v", v, tc.want)
			}
		})
	}
}

func TestCPUThermalMissing(t *testing.T) {
	env := testEnv(t)
	thermalZone(t, env.SysFS, "thermal_zone0", "40000")
	_, err := open(t, env, "cpu_thermal", &CPUThermalOpts{Zone: "thermal_zone3"})
	wantErr(t, err, "t: cpu_thermal thermal_zone3: open: no such zone (present: thermal_zone0)")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%v is not fs.ErrNotExist", err)
	}

	// The file vanishing after Open is a read error, not a panic or a zero.
	s, err := open(t, env, "cpu_thermal", &CPUThermalOpts{Zone: "thermal_zone0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(env.SysFS, "class", "thermal", "thermal_zone0")); err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(context.Background())
	wantErr(t, err, "t: cpu_thermal thermal_zone0: read: open ", "no such file or directory")

	_, err = open(t, testEnv(t), "cpu_thermal", &CPUThermalOpts{Zone: "thermal_zone0"})
	wantErr(t, err, "(present: none)")
}

func TestCPUThermalClosedAndCancelled(t *testing.T) {
	env := testEnv(t)
	thermalZone(t, env.SysFS, "thermal_zone0", "40000")
	s, err := open(t, env, "cpu_thermal", &CPUThermalOpts{Zone: "thermal_zone0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(context.Background())
	wantErr(t, err, "read: sensor is closed")
}
