package sensors

import (
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

// Found is a device found by Scan.
type Found struct {
	Addr   uint16 // I²C address; 0 for 1-wire
	ID     string // 1-wire ROM id
	Driver string // the driver to use; "" when unknown
	What   string // what was identified, and how
}

// scanChips lists what ScanI2C tries at each address, in order: every
// registered driver's chip that has an identification (name order), then
// those known by address alone, then parts that are no sensor but are
// configured with one (a multiplexer, a 1-wire bridge), so that
// address-only guesses never shadow a positive identification.
func scanChips() []scanChip {
	var ided, guessed []scanChip
	for _, d := range Drivers() {
		switch {
		case d.I2C == nil:
		case d.I2C.Identify != nil:
			ided = append(ided, scanChip{d.Name, d.I2C})
		default:
			guessed = append(guessed, scanChip{d.Name, d.I2C})
		}
	}
	return append(append(ided, guessed...), otherParts...)
}

type scanChip struct {
	driver string // "" for a part that is no sensor
	*I2CChip
}

// otherParts are parts scan names that no driver reads.
var otherParts = []scanChip{
	{"", &I2CChip{Addrs: muxAddrs, What: "probably a PCA9548/TCA9548A I²C multiplexer (use `mux:` on the sensors behind it)"}},
	{"", &I2CChip{Addrs: ds2482Addrs, What: "probably a DS2482 I²C→1-wire bridge (use ds18b20 with bridge:)"}},
}

// ScanI2C probes every address 0x03..0x77 of bus with a one-byte read,
// like `i2cdetect -r`, and identifies known parts by their ID registers.
// It only reads: no part is reconfigured.
func ScanI2C(bus I2CBus) []Found {
	var out []Found
	chips := scanChips()
	for a := uint16(0x03); a <= 0x77; a++ {
		if err := bus.Tx(a, nil, make([]byte, 1)); err != nil {
			continue
		}
		f := Found{Addr: a, What: "unknown part"}
		for _, c := range chips {
			if c.has(int(a)) && (c.Identify == nil || c.Identify(bus, a)) {
				f.Driver, f.What = c.driver, c.What
				break
			}
		}
		out = append(out, f)
	}
	return out
}

// ScanOneWire lists the DS18B20s the kernel's w1 driver sees under sysfs.
func ScanOneWire(sysfs string) []Found {
	matches, _ := filepath.Glob(filepath.Join(sysfs, "bus", "w1", "devices", "28-*"))
	sort.Strings(matches)
	var out []Found
	for _, m := range matches {
		out = append(out, Found{ID: filepath.Base(m), Driver: "ds18b20", What: "Maxim DS18B20 (family 28, kernel w1_therm)"})
	}
	return out
}

// WriteScan prints what was found as an i2cdetect-style map, a list, and
// a ready-to-paste `sensors:` snippet. bus "" means no I²C bus was scanned.
func WriteScan(w io.Writer, bus string, i2c []Found, onewire []Found) {
	if bus != "" {
		writeMap(w, bus, i2c)
	}
	if len(i2c)+len(onewire) == 0 {
		fmt.Fprintln(w, "nothing found: check wiring, power and that I²C / 1-wire are enabled (raspi-config)")
		return
	}
	for _, f := range i2c {
		fmt.Fprintf(w, "  0x%02x  %-9s %s\n", f.Addr, orDash(f.Driver), f.What)
	}
	for _, f := range onewire {
		fmt.Fprintf(w, "  %s  %s %s\n", f.ID, f.Driver, f.What)
	}
	fmt.Fprintln(w, "\nsensors:")
	names := map[string]int{}
	for _, f := range append(append([]Found(nil), i2c...), onewire...) {
		if f.Driver == "" {
			continue
		}
		names[f.Driver]++
		name := f.Driver
		if names[f.Driver] > 1 {
			name = fmt.Sprintf("%s_%d", f.Driver, names[f.Driver])
		}
		fmt.Fprintf(w, "  - name: %s\n    driver: %s\n", name, f.Driver)
		if _, ok := Lookup(f.Driver); !ok {
			fmt.Fprintf(w, "    # driver %s is not in this build\n", f.Driver)
		}
		keys := optionKeys(f.Driver)
		if f.ID != "" && keys["id"] {
			fmt.Fprintf(w, "    id: %s\n", f.ID)
		}
		if f.Addr != 0 {
			if keys["bus"] {
				fmt.Fprintf(w, "    bus: %q\n", bus)
			}
			if keys["address"] {
				fmt.Fprintf(w, "    address: 0x%02x\n", f.Addr)
			}
		}
		fmt.Fprintf(w, "    interval: 30s\n")
		if err := snippetProblem(f, bus); err != "" {
			fmt.Fprintf(w, "    # to do: %s\n", err)
		}
	}
}

// snippetProblem returns what the printed entry still lacks (ads1x15
// channels, hx711 pins...), as its driver's Validate says it.
func snippetProblem(f Found, bus string) string {
	d, ok := Lookup(f.Driver)
	if !ok {
		return ""
	}
	opts := d.NewOpts()
	v := reflect.ValueOf(opts).Elem()
	set := func(key string, val any) {
		for i := range v.NumField() {
			if strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0] == key && v.Field(i).CanSet() {
				x := reflect.ValueOf(val)
				if x.Type().ConvertibleTo(v.Field(i).Type()) {
					v.Field(i).Set(x.Convert(v.Field(i).Type()))
				}
			}
		}
	}
	if f.Addr != 0 {
		set("bus", bus)
		set("address", int(f.Addr))
	}
	if f.ID != "" {
		set("id", f.ID)
	}
	if val, ok := opts.(Validator); ok {
		if err := val.Validate(); err != nil {
			return err.Error()
		}
	}
	return ""
}

// writeMap prints the i2cdetect-style address map.
func writeMap(w io.Writer, bus string, i2c []Found) {
	seen := map[uint16]bool{}
	for _, f := range i2c {
		seen[f.Addr] = true
	}
	fmt.Fprintf(w, "I²C bus %s:\n     0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f\n", bus)
	for row := uint16(0); row < 0x80; row += 0x10 {
		var line strings.Builder
		fmt.Fprintf(&line, "%02x:", row)
		for a := row; a < row+0x10; a++ {
			switch {
			case a < 0x03 || a > 0x77:
				line.WriteString("   ")
			case seen[a]:
				fmt.Fprintf(&line, " %02x", a)
			default:
				line.WriteString(" --")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(line.String(), " "))
	}
	fmt.Fprintln(w)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// optionKeys returns the yaml keys of a driver's options.
func optionKeys(driver string) map[string]bool {
	d, ok := Lookup(driver)
	if !ok {
		return map[string]bool{"bus": true, "address": true, "id": true}
	}
	return OptionKeys(d.NewOpts())
}

// OptionKeys returns the yaml keys of an options struct (pointer).
func OptionKeys(opts any) map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(opts)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return out
	}
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			out[tag] = true
		}
	}
	return out
}

// Option describes one driver option, for `sensor-agent drivers`.
type Option struct {
	Key, Type, Default string
}

// Options lists an options struct's keys with their types and defaults.
func Options(opts any) []Option {
	v := reflect.ValueOf(opts)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	var out []Option
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if key == "" || key == "-" {
			continue
		}
		def := fmt.Sprint(v.Field(i).Interface())
		switch x := v.Field(i).Interface().(type) {
		case string:
			def = fmt.Sprintf("%q", x)
		case int:
			if strings.Contains(key, "address") && x > 0 {
				def = fmt.Sprintf("0x%02x", x)
			}
		}
		if v.Field(i).Kind() == reflect.Pointer && v.Field(i).IsNil() {
			def = "none"
		}
		out = append(out, Option{Key: key, Type: typeName(f.Type), Default: def})
	}
	return out
}

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(Duration(0)):
		return "duration"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem())
	case t.Kind() == reflect.Pointer:
		return typeName(t.Elem())
	case t.Kind() == reflect.Struct:
		return "mapping"
	}
	return t.Kind().String()
}
