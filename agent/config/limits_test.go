package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// aliasBomb returns a config whose sensors list holds `sensors` aliases to
// one sim sensor whose values list holds `values` aliases to one value:
// sensors×values values once expanded, from a file of tens of KB. With
// channels, the values are mappings (ads1x15 channels), each several nodes.
func aliasBomb(sensors, values int, channels bool) string {
	var b strings.Builder
	b.WriteString(minimal)
	if channels {
		b.WriteString("  - &s\n    name: adc\n    driver: ads1x15\n    channels:\n      - &c {channel: A0, name: soil_v}\n")
		for range values {
			b.WriteString("      - *c\n")
		}
	} else {
		b.WriteString("  - &s\n    name: bomb\n    driver: sim\n    values:\n      - &v level\n")
		for range values {
			b.WriteString("      - *v\n")
		}
	}
	for range sensors {
		b.WriteString("  - *s\n")
	}
	return b.String()
}

func TestParseAliasBudget(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the error; nil = it loads
	}{
		{"a shared calibration is fine",
			strings.Replace(minimal, "    interval: 100ms\n", "    interval: 100ms\n    calibrate: &cal {level: {offset: 1}}\n  - {name: b, driver: sim, calibrate: *cal}\n  - {name: c, driver: sim, calibrate: *cal}\n", 1),
			nil},
		// 1,000 aliases to a sensor of 1,000 aliases: a million values.
		{"1,000 aliases to a sensor of 1,000 aliases", aliasBomb(1000, 1000, false),
			[]string{"c.yaml:1021: sensors[6]: alias *s (anchor &s on line 12): aliases expand to more than 10000 values; write the entries out or use fewer aliases"}},
		{"4,000 aliases to a sensor of 4,000 aliased channels", aliasBomb(4000, 4000, true),
			[]string{"c.yaml:2017: sensors[1].channels[2001]: alias *c (anchor &c on line 16): aliases expand to more than 10000 values"}},
		{"nested bomb of lists",
			minimal + "x: &a [l, l, l, l, l, l, l, l, l, l]\ny: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nz: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nw: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
			[]string{"c.yaml:15: w[7]: alias *c (anchor &c on line 14): aliases expand to more than 10000 values"}},
		{"an alias inside its own value",
			strings.Replace(minimal, "    interval: 100ms\n", "    interval: 100ms\n    limits: &l {level: *l}\n", 1),
			[]string{"c.yaml:12: sensors[0].limits.level: alias *l (anchor &l on line 12): the alias is inside the value it names"}},
		// A yaml.Unmarshaler (Size, Duration) is handed the node whole:
		// the walk before decoding covers it too.
		{"bomb into a yaml.Unmarshaler", minimal +
			"x1: &x1 [a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a]\n" +
			"x2: &x2 [" + strings.TrimSuffix(strings.Repeat("*x1, ", 50), ", ") + "]\n" +
			"spool:\n  max_bytes: [" + strings.TrimSuffix(strings.Repeat("*x2, ", 50), ", ") + "]\n",
			[]string{"c.yaml:15: spool.max_bytes[2]: alias *x2 (anchor &x2 on line 13): aliases expand to more than 10000 values"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.src), noEnv)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseOneDocument(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // "" = it loads
	}{
		{"leading ---", "---\n" + minimal, ""},
		{"trailing ---", minimal + "---\n", ""},
		{"trailing --- and a comment", minimal + "---\n# the old config\n", ""},
		{"document end marker", minimal + "...\n", ""},
		{"second document", minimal + "---\nsensors:\n  - name: other\n    driver: sim\n", "c.yaml:12: a second YAML document starts here (---)"},
		{"third document after an empty one", minimal + "---\n---\ndevice_id: pi-2\n", "c.yaml:13: a second YAML document starts here"},
		{"syntax error in the second document", minimal + "---\na: [\n", "c.yaml: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.src), noEnv)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseExplicitZeroDurations(t *testing.T) {
	withPublish := func(kv string) string {
		return strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\npublish:\n  "+kv, 1)
	}
	withEndpoint := func(kv string) string {
		return strings.Replace(minimal, "  cert_file: c.pem", "  "+kv+"\n  cert_file: c.pem", 1)
	}
	tests := []struct {
		name string
		src  string
		want string // "" = it loads
	}{
		{"interval 0s", strings.Replace(minimal, "interval: 100ms", "interval: 0s", 1), "c.yaml:11: sensors[0].interval: is 0 or empty"},
		{"interval 0", strings.Replace(minimal, "interval: 100ms", "interval: 0", 1), "c.yaml:11: sensors[0].interval: is 0 or empty"},
		{"interval empty", strings.Replace(minimal, "interval: 100ms", "interval:", 1), "c.yaml:11: sensors[0].interval: is 0 or empty"},
		{"timeout 0s", minimal + "    timeout: 0s\n", "c.yaml:12: sensors[0].timeout: is 0 or empty"},
		{"endpoint timeout 0s", withEndpoint("timeout: 0s"), "c.yaml:6: endpoint.timeout: must be positive"},
		{"flush interval 0s", withPublish("flush_interval: 0s"), "c.yaml:5: publish.flush_interval: must be positive"},
		// 0 has a documented meaning here.
		{"sync interval 0", strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\nspool:\n  sync_interval: 0s", 1), ""},
		{"max rate 0", withPublish("max_rate: 0"), ""},
		{"fallback port 0", withEndpoint("fallback_port: 0"), ""},
		{"sim delay 0", minimal + "    delay: 0s\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.src), noEnv)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	// Left out, they get their defaults.
	c, err := Parse("c.yaml", []byte(strings.Replace(minimal, "    interval: 100ms\n", "", 1)), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Sensors[0]; s.Interval.D() != DefaultInterval || s.Timeout.D() != 10*time.Second {
		t.Errorf("interval %s timeout %s, want the defaults %s and 10s", s.Interval, s.Timeout, DefaultInterval)
	}
}

func TestParseErrorListingIsCapped(t *testing.T) {
	tests := []struct {
		unknown   int
		wantLines int
		wantMore  string
	}{
		{1, 1, ""},
		{20, 20, ""},
		{21, 21, ""}, // one more line says as much as "and 1 more"
		{22, 21, "… and 2 more errors"},
		{50000, 21, "… and 49980 more errors"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.unknown), func(t *testing.T) {
			var b strings.Builder
			b.WriteString(minimal)
			for i := range tt.unknown {
				fmt.Fprintf(&b, "k%d: 1\n", i)
			}
			_, err := Parse("c.yaml", []byte(b.String()), noEnv)
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != tt.wantLines {
				t.Errorf("%d lines, want %d", len(lines), tt.wantLines)
			}
			if !strings.HasPrefix(lines[0], "c.yaml:12: k0: unknown key") {
				t.Errorf("first line %q, want the first unknown key", lines[0])
			}
			if last := lines[len(lines)-1]; tt.wantMore != "" && last != tt.wantMore {
				t.Errorf("last line %q, want %q", last, tt.wantMore)
			}
			var ce *Errors
			if !errorsAs(err, &ce) || ce.Total != tt.unknown {
				t.Errorf("error %T: want *Errors with Total %d", err, tt.unknown)
			}
		})
	}
}

func TestParseFileSize(t *testing.T) {
	big := minimal + "# " + strings.Repeat("x", MaxFileSize) + "\n"
	_, err := Parse("c.yaml", []byte(big), noEnv)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("c.yaml: the file is %d bytes, more than the 1048576 (1 MiB) a config may have", len(big))) {
		t.Fatalf("error %v, want the size limit", err)
	}
	// Just under the limit still loads.
	ok := minimal + "# " + strings.Repeat("x", MaxFileSize-len(minimal)-3) + "\n"
	if _, err := Parse("c.yaml", []byte(ok), noEnv); err != nil {
		t.Fatalf("%d bytes: %v", len(ok), err)
	}
}

func TestParseRendersEveryTopic(t *testing.T) {
	long := strings.Repeat("n", 250)
	tests := []struct {
		name string
		src  string
		want string // "" = it loads
	}{
		{"fits", minimal, ""},
		// The template fits; the second sensor's name makes its topic
		// 263 bytes.
		{"over 256 bytes once rendered", minimal + "  - name: " + long + "\n    driver: sim\n",
			`c.yaml:12: sensors[1]: publish.topic "sensors/{device}/{sensor}" gives this sensor the topic "sensors/pi-1/` + long +
				`", which AWS IoT refuses: invalid topic: 263 bytes, limit is 256; shorten publish.topic, device_id or the sensor's name`},
		{"over 256 bytes with a long template",
			strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\npublish:\n  topic: "+strings.Repeat("t", 250)+"/{device}/{sensor}", 1),
			"c.yaml:11: sensors[0]: publish.topic", // the template passes with one-letter values
		},
		{"basic ingest rule named by the device",
			strings.Replace(minimal, "state_dir: /tmp/x", "state_dir: /tmp/x\npublish:\n  topic: $aws/rules/{device}/{sensor}", 1),
			`sensors[0]: publish.topic "$aws/rules/{device}/{sensor}" gives this sensor the topic "$aws/rules/pi-1/demo", which AWS IoT refuses: invalid topic: Basic Ingest rule name "pi-1" must match`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.src), noEnv)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant %q", err, tt.want)
			}
		})
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
