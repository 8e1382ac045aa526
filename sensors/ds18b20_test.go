package sensors

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

const (
	romA = "28-0316a2795a2f"
	romB = "28-00000abcdef0"
)

// w1Tree writes a fake /sys/bus/w1/devices: files maps "<rom>/<file>" to
// content; a key ending in "/" makes just the directory.
func w1Tree(t *testing.T, sysfs string, files map[string]string) {
	t.Helper()
	devices := filepath.Join(sysfs, "bus", "w1", "devices")
	if err := os.MkdirAll(devices, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(devices, name)
		if name[len(name)-1] == '/' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func w1Slave(crc, t string) string {
	return "5e 01 4b 46 7f ff 02 10 d7 : crc=d7 " + crc + "\n5e 01 4b 46 7f ff 02 10 d7 t=" + t + "\n"
}

func TestDS18B20Read(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  float64
		err   string // "" means success
	}{
		{"crc ok", map[string]string{romA + "/w1_slave": w1Slave("YES", "21437")}, 21.44, ""},
		{"negative", map[string]string{romA + "/w1_slave": w1Slave("YES", "-10125")}, -10.13, ""},
		{"temperature file only", map[string]string{romA + "/temperature": "22500\n"}, 22.5, ""},
		{"crc no", map[string]string{romA + "/w1_slave": w1Slave("NO", "21437")}, 0, "t: ds18b20 " + romA + ": read: crc check failed (w1_slave says NO)"},
		{"85 power-on", map[string]string{romA + "/w1_slave": w1Slave("YES", "85000")}, 0, "read: got 85 °C, the power-on value: no conversion ran"},
		{"85 temperature file", map[string]string{romA + "/temperature": "85000"}, 0, "read: got 85 °C"},
		{"-127", map[string]string{romA + "/w1_slave": w1Slave("YES", "-127000")}, 0, "read: implausible temperature_c -127 (valid -55..125)"},
		{"too hot", map[string]string{romA + "/w1_slave": w1Slave("YES", "126000")}, 0, "implausible temperature_c 126"},
		{"all zeros", map[string]string{romA + "/w1_slave": "00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n"}, 0, "scratchpad is all zeros"},
		{"one line", map[string]string{romA + "/w1_slave": "5e 01 4b 46 7f ff 02 10 d7 : crc=d7 YES\n"}, 0, "parse w1_slave: want 2 lines, got 1"},
		{"no verdict", map[string]string{romA + "/w1_slave": "garbage\nmore garbage\n"}, 0, `parse w1_slave: no crc verdict in "garbage"`},
		{"no t=", map[string]string{romA + "/w1_slave": "5e 01 4b 46 7f ff 02 10 d7 : crc=d7 YES\nxx\n"}, 0, `parse w1_slave: no t= in "xx"`},
		{"bad number", map[string]string{romA + "/w1_slave": w1Slave("YES", "2x")}, 0, "parse w1_slave: strconv.Atoi"},
		{"bad temperature file", map[string]string{romA + "/temperature": "hot"}, 0, "parse temperature: strconv.Atoi"},
		{"no data file", map[string]string{romA + "/": ""}, 0, "/temperature: no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv(t)
			w1Tree(t, env.SysFS, tc.files)
			s, err := open(t, env, "ds18b20", &DS18B20Opts{ID: romA})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			v, err := s.Read(context.Background())
			if tc.err != "" {
				wantErr(t, err, "t: ds18b20 "+romA+": read: ", tc.err)
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

func TestDS18B20Open(t *testing.T) {
	for _, tc := range []struct {
		name  string
		id    string
		files map[string]string
		want  string // error; "" means success
	}{
		{"auto-pick the only one", "", map[string]string{romA + "/w1_slave": w1Slave("YES", "20000"), "w1_bus_master1/": "", "10-000801b5a0f4/": ""}, ""},
		{"explicit among several", romB, map[string]string{romA + "/": "", romB + "/w1_slave": w1Slave("YES", "20000")}, ""},
		{"several", "", map[string]string{romA + "/": "", romB + "/": ""}, "t: ds18b20: open: 2 sensors found (" + romB + ", " + romA + "); set id to one of them"},
		{"none", "", map[string]string{"w1_bus_master1/": ""}, "t: ds18b20: open: no DS18B20 (28-*) under "},
		{"no w1 at all", "", nil, "enable 1-wire (dtoverlay=w1-gpio)"},
		{"missing device", romB, map[string]string{romA + "/": ""}, "t: ds18b20 " + romB + ": open: not found under "},
		{"missing device lists present", romB, map[string]string{romA + "/": ""}, "(present: " + romA + ")"},
		{"invalid id", "28-XYZ", nil, `t: ds18b20: id: "28-XYZ" is not a 1-wire ROM id`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv(t)
			if tc.files != nil {
				w1Tree(t, env.SysFS, tc.files)
			}
			s, err := open(t, env, "ds18b20", &DS18B20Opts{ID: tc.id})
			if tc.want != "" {
				wantErr(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, err := s.Read(context.Background())
			if err != nil || v[TemperatureC] != 20 {
				t.Fatalf("Read = %v, %v", v, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			_, err = s.Read(context.Background())
			wantErr(t, err, "read: sensor is closed")
		})
	}
}

// TestDS18B20Unplugged: the kernel removes the directory when the sensor
// drops off the bus; the error must say so.
func TestDS18B20Unplugged(t *testing.T) {
	env := testEnv(t)
	w1Tree(t, env.SysFS, map[string]string{romA + "/w1_slave": w1Slave("YES", "20000")})
	s, err := open(t, env, "ds18b20", &DS18B20Opts{ID: romA})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(env.SysFS, "bus", "w1", "devices", romA)); err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(context.Background())
	wantErr(t, err, "t: ds18b20 "+romA+": read: device is gone from the bus")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%v is not fs.ErrNotExist", err)
	}
}

func TestDS18B20Cancelled(t *testing.T) {
	env := testEnv(t)
	w1Tree(t, env.SysFS, map[string]string{romA + "/w1_slave": w1Slave("YES", "20000")})
	s, err := open(t, env, "ds18b20", &DS18B20Opts{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
