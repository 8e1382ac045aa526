package sensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"periph.io/x/conn/v3/physic"
)

// regBus is a fake I²C bus holding devices as register maps: a write of
// one byte sets the register pointer, a read returns bytes from there.
// Writes of two bytes (16-bit commands, e.g. HDC302x) pick a command reply.
type regBus struct {
	devs map[uint16]map[string][]byte // addr → hex of what was written → reply
}

func (b *regBus) String() string                  { return "fake" }
func (b *regBus) SetSpeed(physic.Frequency) error { return nil }
func (b *regBus) Tx(addr uint16, w, r []byte) error {
	d, ok := b.devs[addr]
	if !ok {
		return errors.New("remote I/O error")
	}
	reply, ok := d[string(w)]
	if !ok {
		if len(w) > 0 {
			return errors.New("remote I/O error")
		}
		reply = []byte{0xFF}
	}
	copy(r, reply)
	return nil
}

func TestScan(t *testing.T) {
	bus := &regBus{devs: map[uint16]map[string][]byte{
		0x76: {"\xd0": {0x60}},                             // BME280
		0x77: {"\xd0": {0x58}},                             // BMP280
		0x18: {"\x06": {0x00, 0x54}, "\x07": {0x04, 0x00}}, // MCP9808
		0x19: {},                                           // DS2482 (no MCP9808 id)
		0x44: {"\x37\x81": {0x30, 0x00, 0x00}},             // HDC3022
		0x40: {"\x00": {0x39, 0x9F}},                       // INA219
		0x48: {"\x01": {0x60, 0xA0}},                       // TMP102
		0x49: {"\x01": {0x85, 0x83}},                       // ADS1115
		0x5A: {"\x20": {0x81}},                             // CCS811
		0x38: {},                                           // AHT20
		0x70: {},                                           // PCA9548
		0x29: {},                                           // something unknown
	}}
	got := ScanI2C(bus)
	want := map[uint16]string{0x76: "bme280", 0x77: "bmp280", 0x18: "mcp9808", 0x19: "", 0x44: "hdc302x", 0x40: "ina219",
		0x48: "tmp102", 0x49: "ads1x15", 0x5A: "ccs811", 0x38: "aht20", 0x70: "", 0x29: ""}
	if len(got) != len(want) {
		t.Fatalf("found %d devices, want %d: %+v", len(got), len(want), got)
	}
	for _, f := range got {
		if d, ok := want[f.Addr]; !ok || d != f.Driver {
			t.Errorf("%#x: driver %q (%s), want %q", f.Addr, f.Driver, f.What, d)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i].Addr <= got[i-1].Addr {
			t.Error("not in address order")
		}
	}

	sys := t.TempDir()
	for _, id := range []string{"28-0316a2795a2f", "28-00000abcdef0", "10-000801234567"} {
		os.MkdirAll(filepath.Join(sys, "bus", "w1", "devices", id), 0o755)
	}
	ow := ScanOneWire(sys)
	if len(ow) != 2 || ow[0].ID != "28-00000abcdef0" {
		t.Fatalf("1-wire: %+v", ow)
	}

	var out bytes.Buffer
	WriteScan(&out, "1", got, ow)
	s := out.String()
	for _, line := range []string{
		"70: 70 -- -- -- -- -- 76 77\n",
		"  0x76  bme280    Bosch BME280 (chip id 0x60 at 0xD0)",
		"  0x70  -         probably a PCA9548",
		"  - name: bme280\n    driver: bme280\n    bus: \"1\"\n    address: 0x76\n",
		"  - name: ds18b20\n    driver: ds18b20\n    id: 28-00000abcdef0\n",
		"  - name: ds18b20_2\n",
		"    driver: ads1x15\n    bus: \"1\"\n    address: 0x49\n    interval: 30s\n    # to do: channels:",
	} {
		if !strings.Contains(s, line) {
			t.Errorf("scan output lacks %q:\n%s", line, s)
		}
	}
}

func TestScanNothing(t *testing.T) {
	var out bytes.Buffer
	WriteScan(&out, "1", ScanI2C(&regBus{}), ScanOneWire(t.TempDir()))
	if !strings.Contains(out.String(), "nothing found") {
		t.Errorf("output:\n%s", out.String())
	}
}
