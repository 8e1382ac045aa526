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

// A chip is one part Scan can recognise: where it may answer and how to
// tell it from others at the same address.
type chip struct {
	driver string
	addrs  []uint16
	// identify returns a description when the part at addr is this chip.
	identify func(b I2CBus, addr uint16) (string, bool)
}

func span(lo, hi uint16) []uint16 {
	var out []uint16
	for a := lo; a <= hi; a++ {
		out = append(out, a)
	}
	return out
}

// reg reads n bytes of register r.
func reg(b I2CBus, addr uint16, r byte, n int) ([]byte, bool) {
	buf := make([]byte, n)
	if err := b.Tx(addr, []byte{r}, buf); err != nil {
		return nil, false
	}
	return buf, true
}

func reg16(b I2CBus, addr uint16, r byte) (uint16, bool) {
	v, ok := reg(b, addr, r, 2)
	if !ok {
		return 0, false
	}
	return uint16(v[0])<<8 | uint16(v[1]), true
}

// chips are tried in order; parts with an ID register come first so that
// address-only guesses never shadow a positive identification.
var chips = []chip{
	{"bme280", []uint16{0x76, 0x77}, func(b I2CBus, a uint16) (string, bool) {
		id, ok := reg(b, a, 0xD0, 1)
		return "Bosch BME280 (chip id 0x60 at 0xD0)", ok && id[0] == 0x60
	}},
	{"bmp280", []uint16{0x76, 0x77}, func(b I2CBus, a uint16) (string, bool) {
		id, ok := reg(b, a, 0xD0, 1)
		return "Bosch BMP280 (chip id 0x58 at 0xD0)", ok && (id[0] == 0x58 || id[0] == 0x56 || id[0] == 0x57)
	}},
	{"bmp180", []uint16{0x77}, func(b I2CBus, a uint16) (string, bool) {
		id, ok := reg(b, a, 0xD0, 1)
		return "Bosch BMP180 (chip id 0x55 at 0xD0)", ok && id[0] == 0x55
	}},
	{"mcp9808", span(0x18, 0x1F), func(b I2CBus, a uint16) (string, bool) {
		m, ok1 := reg16(b, a, 0x06)
		d, ok2 := reg16(b, a, 0x07)
		return "Microchip MCP9808 (manufacturer 0x0054, device 0x04)", ok1 && ok2 && m == 0x0054 && d>>8 == 0x04
	}},
	{"ccs811", []uint16{0x5A, 0x5B}, func(b I2CBus, a uint16) (string, bool) {
		id, ok := reg(b, a, 0x20, 1)
		return "ams CCS811 (HW_ID 0x81)", ok && id[0] == 0x81
	}},
	{"hdc302x", span(0x44, 0x47), func(b I2CBus, a uint16) (string, bool) {
		r := make([]byte, 3)
		if err := b.Tx(a, []byte{0x37, 0x81}, r); err != nil {
			return "", false
		}
		return "TI HDC302x (manufacturer id 0x3000)", r[0] == 0x30 && r[1] == 0x00
	}},
	{"ina219", span(0x40, 0x4F), func(b I2CBus, a uint16) (string, bool) {
		v, ok := reg16(b, a, 0x00)
		return "TI INA219 (config 0x399F after reset)", ok && v == 0x399F
	}},
	{"tmp102", span(0x48, 0x4B), func(b I2CBus, a uint16) (string, bool) {
		v, ok := reg16(b, a, 0x01)
		return "TI TMP102 (config 0x60A0 after reset)", ok && v&0xFFDF == 0x6080 // AL (bit 5) follows the alert state
	}},
	{"ads1x15", span(0x48, 0x4B), func(b I2CBus, a uint16) (string, bool) {
		v, ok := reg16(b, a, 0x01)
		return "TI ADS1115/ADS1015 (config 0x8583 after reset)", ok && v == 0x8583
	}},
	// Address-only: these parts have no ID register that is safe to read.
	{"aht20", []uint16{0x38}, func(I2CBus, uint16) (string, bool) { return "probably an Aosong AHT20 (address 0x38)", true }},
	{"bh1750", []uint16{0x23}, func(I2CBus, uint16) (string, bool) { return "probably a ROHM BH1750 (address 0x23)", true }},
	{"scd4x", []uint16{0x62}, func(I2CBus, uint16) (string, bool) { return "probably a Sensirion SCD40/41 (address 0x62)", true }},
	{"sgp30", []uint16{0x58}, func(I2CBus, uint16) (string, bool) { return "probably a Sensirion SGP30 (address 0x58)", true }},
	{"am2320", []uint16{0x5C}, func(I2CBus, uint16) (string, bool) {
		return "probably an Aosong AM2320 (address 0x5C; a BH1750 with ADDR high uses it too)", true
	}},
	{"", span(0x70, 0x77), func(I2CBus, uint16) (string, bool) {
		return "probably a PCA9548/TCA9548A I²C multiplexer (use `mux:` on the sensors behind it)", true
	}},
	{"", span(0x18, 0x1B), func(I2CBus, uint16) (string, bool) {
		return "probably a DS2482 I²C→1-wire bridge (use ds18b20 with bridge:)", true
	}},
}

// ScanI2C probes every address 0x03..0x77 of bus with a one-byte read,
// like `i2cdetect -r`, and identifies known parts by their ID registers.
// It only reads: no part is reconfigured.
func ScanI2C(bus I2CBus) []Found {
	var out []Found
	for a := uint16(0x03); a <= 0x77; a++ {
		if err := bus.Tx(a, nil, make([]byte, 1)); err != nil {
			continue
		}
		f := Found{Addr: a, What: "unknown part"}
		for _, c := range chips {
			if !containsAddr(c.addrs, a) {
				continue
			}
			if what, ok := c.identify(bus, a); ok {
				f.Driver, f.What = c.driver, what
				break
			}
		}
		out = append(out, f)
	}
	return out
}

func containsAddr(as []uint16, a uint16) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
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
