package sensors

import (
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewiretest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ds18b20"
	"periph.io/x/devices/v3/ds248x"
)

// The tests below drive the real periph stack, ds18b20 → ds248x → I²C,
// against i2ctest.Playback transcripts of what a DS2482-100 sees. The
// transcripts are built from the DS2482 command set as devices/ds248x
// v3.7.4 issues it:
//
//	device reset          W f0
//	set read pointer      W e1 <reg>        (f0 status, e1 read data)
//	write configuration   W d2 <cfg>        (e1 = APU; a5 = APU+SPU, strong pull-up)
//	1-wire reset          W b4, then a status poll: a bare 1-byte read
//	1-wire write byte     W a5 <byte>, status poll
//	1-wire read byte      W 96 R <status>, status poll, W e1 e1 R <byte>
//	1-wire triplet        W 78 <dir>, status poll
//
// Status register bits: 1WB 0x01, PPD 0x02, SD 0x04, LL 0x08, RST 0x10,
// SBR 0x20, TSB 0x40, DIR 0x80. The DS18B20 side (match ROM 55 + ROM,
// convert T 44 with the strong pull-up, read scratchpad be, write
// scratchpad 4e, copy scratchpad 48) follows devices/ds18b20's tests, and
// scratchpads use the DS18B20 datasheet's temperature table.

const ds2482Addr = 0x18

// romAWire is 28-0316a2795a2f in transmission order: family, the serial
// least significant byte first (the kernel prints it the other way round),
// CRC8.
var romAWire = []byte{0x28, 0x2f, 0x5a, 0x79, 0xa2, 0x16, 0x03, 0x82}

var errI2C = errors.New("sysfs-i2c: remote I/O error")

// ds2482Bus is a DS2482-100 transcript. Like the chip, it NACKs the read
// pointer codes the -100 lacks (port configuration b4, DS2483; channel
// selection d2, DS2482-800), which is how ds248x tells the chips apart.
// fail makes the op at that index of Ops fail after it was consumed, like
// a bridge that browned out mid-command.
type ds2482Bus struct {
	i2ctest.Playback
	fail map[int]error
}

func newDS2482Bus(ops ...[]i2ctest.IO) *ds2482Bus {
	b := &ds2482Bus{Playback: i2ctest.Playback{DontPanic: true}}
	for _, o := range ops {
		b.Ops = append(b.Ops, o...)
	}
	return b
}

func (b *ds2482Bus) Tx(addr uint16, w, r []byte) error {
	if len(w) == 2 && w[0] == 0xe1 && (w[1] == 0xb4 || w[1] == 0xd2) {
		return errI2C
	}
	b.Lock()
	i := b.Count
	b.Unlock()
	if err := b.Playback.Tx(addr, w, r); err != nil {
		return err
	}
	return b.fail[i]
}

func dsIO(w []byte, r ...byte) i2ctest.IO {
	return i2ctest.IO{Addr: ds2482Addr, W: w, R: r}
}

// ds2482Init is ds248x.New on a DS2482-100.
func ds2482Init() []i2ctest.IO {
	return []i2ctest.IO{
		dsIO([]byte{0xf0}),             // device reset
		dsIO([]byte{0xe1, 0xf0}, 0x18), // status after a device reset: RST|LL
		dsIO([]byte{0xd2, 0xe1}, 0x01), // configuration APU, read back as its low nibble
		// e1 b4 and e1 d2 are NACKed by ds2482Bus.
	}
}

// owReset is a 1-wire reset answered with status.
func owReset(status byte) []i2ctest.IO {
	return []i2ctest.IO{dsIO([]byte{0xb4}), dsIO(nil, status)}
}

// owTx is one onewire.Bus.Tx through the bridge: reset (a presence pulse),
// the bytes written, the bytes read. With strong, the strong pull-up is
// switched on before the last byte.
func owTx(w, r []byte, strong bool) []i2ctest.IO {
	ops := owReset(0x0a) // PPD|LL
	for i, b := range w {
		if strong && i == len(w)-1 && len(r) == 0 {
			ops = append(ops, dsIO([]byte{0xd2, 0xa5}))
		}
		ops = append(ops, dsIO([]byte{0xa5, b}), dsIO(nil, 0x08))
	}
	for i, b := range r {
		if strong && i == len(r)-1 {
			ops = append(ops, dsIO([]byte{0xd2, 0xa5}))
		}
		// ds248x reads one byte with the read command itself; it gets the
		// status register (busy), then overwrites it with the data byte.
		ops = append(ops, dsIO([]byte{0x96}, 0x09), dsIO(nil, 0x08), dsIO([]byte{0xe1, 0xe1}, b))
	}
	return ops
}

func matchROM(rom []byte, cmd ...byte) []byte {
	return append(append([]byte{0x55}, rom...), cmd...)
}

func readScratchpad(rom, spad []byte) []i2ctest.IO {
	return owTx(matchROM(rom, 0xbe), spad, false)
}

// senseOps is ds18b20.Dev.Sense: convert T with the strong pull-up, then
// read the scratchpad.
func senseOps(rom, spad []byte) []i2ctest.IO {
	return append(owTx(matchROM(rom, 0x44), nil, true), readScratchpad(rom, spad)...)
}

// crc8 is the Dallas/Maxim 1-wire CRC (x⁸+x⁵+x⁴+1, reflected), bit by bit
// as in Maxim application note 27, independent of periph's table.
func crc8(b []byte) byte {
	var crc byte
	for _, x := range b {
		for i := 0; i < 8; i++ {
			mix := (crc ^ x) & 1
			crc >>= 1
			if mix != 0 {
				crc ^= 0x8c
			}
			x >>= 1
		}
	}
	return crc
}

// scratchpad is a DS18B20 scratchpad holding raw (the datasheet's 16-bit
// two's complement, 1/16 °C) at the given resolution, with its CRC.
func scratchpad(raw uint16, bits int) []byte {
	b := []byte{byte(raw), byte(raw >> 8), 0x4b, 0x46, byte(bits-9)<<5 | 0x1f, 0xff, 0x0c, 0x10}
	return append(b, crc8(b))
}

// Datasheet table 1 (temperature/data relationship).
const (
	raw125    = 0x07d0
	raw85     = 0x0550 // also the power-on value
	raw25_06  = 0x0191 // +25.0625
	rawM10_13 = 0xff5e // -10.125
	rawM55    = 0xfc90
	rawM127   = 0xf810 // -127, which no DS18B20 produces
)

// tripletRecorder turns onewiretest.Playback's search emulation into the
// DS2482 ops of the same search, so search transcripts need not be
// written by hand.
type tripletRecorder struct {
	pb  *onewiretest.Playback
	ops []i2ctest.IO
}

func (r *tripletRecorder) String() string { return "recorder" }

func (r *tripletRecorder) Tx(w, rd []byte, p onewire.Pullup) error {
	r.ops = append(r.ops, owTx(w, rd, p == onewire.StrongPullup)...)
	return r.pb.Tx(w, rd, p)
}

func (r *tripletRecorder) Search(alarmOnly bool) ([]onewire.Address, error) {
	return onewire.Search(r, alarmOnly)
}

func (r *tripletRecorder) SearchTriplet(dir byte) (onewire.TripletResult, error) {
	tr, err := r.pb.SearchTriplet(dir)
	var w, status byte
	if dir != 0 {
		w = 0x80
	}
	if !tr.GotZero { // wired-AND: the id bit reads 1 only if no device has a 0
		status |= 0x20
	}
	if !tr.GotOne {
		status |= 0x40
	}
	if tr.Taken != 0 {
		status |= 0x80
	}
	r.ops = append(r.ops, dsIO([]byte{0x78, w}), dsIO(nil, status))
	return tr, err
}

// searchOps is ds248x.Dev.Search(false) on a bus holding ids.
func searchOps(t *testing.T, ids ...string) []i2ctest.IO {
	t.Helper()
	rec := &tripletRecorder{pb: &onewiretest.Playback{}}
	for _, id := range ids {
		a, err := romAddress(id)
		if err != nil {
			t.Fatal(err)
		}
		rec.pb.Devices = append(rec.pb.Devices, a)
		rec.pb.Ops = append(rec.pb.Ops, onewiretest.IO{W: []byte{0xf0}}) // one search pass per device
	}
	found, err := rec.Search(false)
	if err != nil || len(found) != len(ids) {
		t.Fatalf("search emulation: %v, %v", found, err)
	}
	return rec.ops
}

func bridgeEnv(t *testing.T, bus I2CBus) Env {
	env := testEnv(t)
	env.I2C = func(name string) (I2CBus, error) {
		if name != "1" {
			t.Errorf("I2C(%q), want \"1\"", name)
		}
		return bus, nil
	}
	return env
}

func bridgeOpts(id string, bits int) *DS18B20Opts {
	return &DS18B20Opts{ID: id, Bridge: &DS2482Bridge{Bus: "1", Address: ds2482Addr}, Resolution: bits}
}

const bridgePrefix = "t: ds18b20 ds2482 /dev/i2c-1 0x18 " + romA

// closeBus fails unless the whole transcript was played.
func closeBus(t *testing.T, b *ds2482Bus) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Error(err)
	}
}

func TestROMAddress(t *testing.T) {
	if got := crc8([]byte{0x02, 0x1c, 0xb8, 0x01, 0, 0, 0}); got != 0xa2 {
		t.Fatalf("crc8 of the AN27 example = %#x, want 0xa2", got)
	}
	for _, tc := range []struct {
		id   string
		want onewire.Address
	}{
		{romA, 0x820316a2795a2f28},
		// devices/ds18b20's test sensor; the kernel calls it 28-0000070e41ac.
		{"28-0000070e41ac", 0x740000070e41ac28},
		{romB, 0x7900000abcdef028},
	} {
		a, err := romAddress(tc.id)
		if err != nil || a != tc.want {
			t.Errorf("romAddress(%q) = %#x, %v; want %#x", tc.id, uint64(a), err, uint64(tc.want))
		}
		if got := romID(a); got != tc.id {
			t.Errorf("romID(%#x) = %q, want %q", uint64(a), got, tc.id)
		}
		var wire [8]byte
		binary.LittleEndian.PutUint64(wire[:], uint64(a))
		if crc8(wire[:7]) != wire[7] {
			t.Errorf("%s: ROM crc %#x, want %#x", tc.id, wire[7], crc8(wire[:7]))
		}
	}
	a, _ := romAddress(romA)
	var wire [8]byte
	binary.LittleEndian.PutUint64(wire[:], uint64(a))
	if !reflect.DeepEqual(wire[:], romAWire) {
		t.Errorf("%s on the wire: % x, want % x", romA, wire, romAWire)
	}
	for _, bad := range []string{"", "28-0316A2795A2F", "280316a2795a2f", "28-0316a2795a2f0"} {
		if _, err := romAddress(bad); err == nil {
			t.Errorf("romAddress(%q) accepted", bad)
		}
	}
}

// TestDS18B20BridgeRead: one open, one 9-bit read per case. The open reads
// the power-on scratchpad (85 °C), as a freshly powered sensor has.
func TestDS18B20BridgeRead(t *testing.T) {
	good := scratchpad(raw25_06, 9)
	badCRC := append([]byte(nil), good...)
	badCRC[8] ^= 0x5a
	noAnswer := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, tc := range []struct {
		name    string
		read    []i2ctest.IO
		want    float64
		err     string // "" means success
		busErr  bool   // the error is a 1-wire one (onewire.BusError)
		shorted bool
	}{
		{"+25.0625", senseOps(romAWire, good), 25.06, "", false, false},
		{"-10.125", senseOps(romAWire, scratchpad(rawM10_13, 9)), -10.13, "", false, false},
		{"+125", senseOps(romAWire, scratchpad(raw125, 9)), 125, "", false, false},
		{"-55", senseOps(romAWire, scratchpad(rawM55, 9)), -55, "", false, false},
		{"85 power-on", senseOps(romAWire, scratchpad(raw85, 9)), 0, "got 85 °C, the power-on value: no conversion ran", false, false},
		{"-127", senseOps(romAWire, scratchpad(rawM127, 9)), 0, "implausible temperature_c -127 (valid -55..125)", false, false},
		{"bad crc", senseOps(romAWire, badCRC), 0, "scratchpad crc check failed (noisy or long wiring, or a weak pull-up): ds18b20: incorrect scratchpad CRC", true, false},
		{"no answer", senseOps(romAWire, noAnswer), 0, "the sensor did not answer (unplugged, or a wrong id): ds18b20: device did not respond", true, false},
		{"no presence", owReset(0x08), 0, "no 1-wire device answered the reset pulse; check the sensor's wiring, power and the pull-up: ds248x: no device present", true, false},
		{"shorted", owReset(0x04), 0, "the 1-wire bus is shorted to ground", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bus := newDS2482Bus(ds2482Init(), readScratchpad(romAWire, scratchpad(raw85, 9)), tc.read)
			s, err := open(t, bridgeEnv(t, bus), "ds18b20", bridgeOpts(romA, 9))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			v, err := s.Read(context.Background())
			closeBus(t, bus)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(v) != 1 || v[TemperatureC] != tc.want {
					t.Errorf("got %v, want temperature_c %v", v, tc.want)
				}
				return
			}
			wantErr(t, err, bridgePrefix+": read: "+tc.err)
			if got := isBusError(err); got != tc.busErr {
				t.Errorf("isBusError(%v) = %v, want %v", err, got, tc.busErr)
			}
			var sh onewire.ShortedBusError
			if got := errors.As(err, &sh) && sh.IsShorted(); got != tc.shorted {
				t.Errorf("shorted(%v) = %v, want %v", err, got, tc.shorted)
			}
		})
	}
}

// TestDS18B20BridgeDefaults: without resolution the sensor converts at 12
// bits (750 ms); it is opened through Open, with the bus lock and limits.
func TestDS18B20BridgeDefaults(t *testing.T) {
	spad := scratchpad(rawM10_13, 12)
	bus := newDS2482Bus(ds2482Init(), readScratchpad(romAWire, spad), senseOps(romAWire, spad))
	drv, _ := Lookup("ds18b20")
	o := drv.NewOpts().(*DS18B20Opts)
	o.ID = romA
	o.Bridge = &DS2482Bridge{Bus: "1"} // address defaults to 0x18
	s, err := Open(context.Background(), drv, bridgeEnv(t, bus), o, Common{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	v, err := s.Read(context.Background())
	if err != nil || v[TemperatureC] != -10.13 {
		t.Fatalf("Read = %v, %v; want -10.13", v, err)
	}
	if d := time.Since(start); d < 750*time.Millisecond {
		t.Errorf("12-bit read took %v, want at least 750ms of conversion", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	closeBus(t, bus)
}

// TestDS18B20BridgeSetsResolution: a sensor set to 12 bits is switched to
// the configured 9 (scratchpad write, then copy to EEPROM under the strong
// pull-up), as devices/ds18b20 does it.
func TestDS18B20BridgeSetsResolution(t *testing.T) {
	bus := newDS2482Bus(
		ds2482Init(),
		readScratchpad(romAWire, scratchpad(raw85, 12)),
		owTx(matchROM(romAWire, 0x4e, 0x00, 0x00, 0x1f), nil, false), // TH, TL, config 9 bits
		owTx(matchROM(romAWire, 0x48), nil, true),
		senseOps(romAWire, scratchpad(raw25_06, 9)),
	)
	s, err := open(t, bridgeEnv(t, bus), "ds18b20", bridgeOpts(romA, 9))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Read(context.Background()); err != nil || v[TemperatureC] != 25.06 {
		t.Fatalf("Read = %v, %v", v, err)
	}
	closeBus(t, bus)
}

// TestDS18B20BridgeRecovers: after an I²C error the ds248x.Dev is dead
// (persistent error model); the next Read re-creates the bridge and the
// sensor. A re-creation that fails is retried on the Read after. A 1-wire
// error (bad CRC) also starts afresh.
func TestDS18B20BridgeRecovers(t *testing.T) {
	spad := scratchpad(raw25_06, 9)
	open1 := append(ds2482Init(), readScratchpad(romAWire, spad)...)
	// Read 1 fails on the status poll after the 1-wire reset of the convert.
	read1 := owReset(0x0a)
	// Read 2: the bridge does not answer its device reset.
	read2 := []i2ctest.IO{dsIO([]byte{0xf0})}
	// Read 3: re-created, reads; read 4 gets a bad CRC; read 5 re-creates
	// again and reads.
	recreate := func(read []i2ctest.IO) []i2ctest.IO {
		return append(append(ds2482Init(), readScratchpad(romAWire, spad)...), read...)
	}
	read3 := recreate(senseOps(romAWire, spad))
	bad := scratchpad(raw25_06, 9)
	bad[8]++
	read4 := senseOps(romAWire, bad)
	read5 := recreate(senseOps(romAWire, scratchpad(rawM10_13, 9)))
	bus := newDS2482Bus(open1, read1, read2, read3, read4, read5)
	bus.fail = map[int]error{
		len(open1) + 1:          errI2C, // the status poll
		len(open1) + len(read1): errI2C, // the device reset
	}
	s, err := open(t, bridgeEnv(t, bus), "ds18b20", bridgeOpts(romA, 9))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = s.Read(ctx)
	wantErr(t, err, bridgePrefix+": read: ds2482 bridge failed; it is re-created on the next read: sysfs-i2c: remote I/O error")
	if !errors.Is(err, errI2C) {
		t.Errorf("%v does not wrap the I²C error", err)
	}
	if bus.Count != len(open1)+len(read1) {
		t.Errorf("the dead bridge kept using the bus: %d ops, want %d", bus.Count, len(open1)+len(read1))
	}

	_, err = s.Read(ctx)
	wantErr(t, err, bridgePrefix+": read: re-create: ds2482 bridge: no device answered at 0x18; check the wiring and the address (i2cdetect -y 1): ds248x: error while resetting: sysfs-i2c: remote I/O error")

	if v, err := s.Read(ctx); err != nil || v[TemperatureC] != 25.06 {
		t.Fatalf("read 3 = %v, %v; want the bridge re-created and 25.06", v, err)
	}
	_, err = s.Read(ctx)
	wantErr(t, err, "read: scratchpad crc check failed")
	if v, err := s.Read(ctx); err != nil || v[TemperatureC] != -10.13 {
		t.Fatalf("read 5 = %v, %v; want -10.13", v, err)
	}
	closeBus(t, bus)
}

// TestDS248xDeadAfterI2CError documents the periph behaviour the recovery
// exists for: after one I²C error a ds248x.Dev returns it forever without
// touching the bus.
func TestDS248xDeadAfterI2CError(t *testing.T) {
	bus := newDS2482Bus(ds2482Init(), []i2ctest.IO{dsIO([]byte{0xb4})})
	bus.fail = map[int]error{len(ds2482Init()): errI2C}
	bus.DontPanic = false // any further bus access panics
	d, err := ds248x.New(bus, ds2482Addr, &ds248x.DefaultOpts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := d.Tx([]byte{0xcc, 0x44}, nil, onewire.WeakPullup); !errors.Is(err, errI2C) {
			t.Fatalf("Tx %d = %v, want the first I²C error", i, err)
		}
	}
	closeBus(t, bus)
}

// TestPeriphDS18B20Accepts85C documents why the driver checks for the
// 85 °C power-on value itself: devices/ds18b20 v3.7.4 compares with
// 85*physic.Celsius, which is 85 K, and returns 85 °C as a reading.
func TestPeriphDS18B20Accepts85C(t *testing.T) {
	spad := scratchpad(raw85, 9)
	bus := &onewiretest.Playback{Ops: []onewiretest.IO{
		{W: matchROM(romAWire, 0xbe), R: spad},
		{W: matchROM(romAWire, 0x44), Pull: onewire.StrongPullup},
		{W: matchROM(romAWire, 0xbe), R: spad},
	}}
	a, _ := romAddress(romA)
	d, err := ds18b20.New(bus, a, 9)
	if err != nil {
		t.Fatal(err)
	}
	var e physic.Env
	if err := d.Sense(&e); err != nil || e.Temperature.Celsius() != 85 {
		t.Fatalf("Sense = %v, %v: periph changed its 85 °C check; update the comments in ds18b20_ds248x.go", e.Temperature, err)
	}
}

func TestDS18B20BridgeSearch(t *testing.T) {
	const ds18s20, ds2413 = "10-000801b5a0f4", "3a-00000012ab34"
	for _, tc := range []struct {
		name string
		id   string
		ops  [][]i2ctest.IO
		err  string // "" means success: romA read at 25.06
	}{
		{"picks the only DS18B20", "", [][]i2ctest.IO{searchOps(t, ds18s20, romA, ds2413)}, ""},
		{"two DS18B20s", "", [][]i2ctest.IO{searchOps(t, romA, romB)}, "t: ds18b20 ds2482 /dev/i2c-1 0x18: open: 2 DS18B20 sensors found ("},
		{"no DS18B20", "", [][]i2ctest.IO{searchOps(t, ds18s20)}, "t: ds18b20 ds2482 /dev/i2c-1 0x18: open: no DS18B20 (28-*) on the 1-wire bus (present: " + ds18s20 + "); check the wiring and the pull-up"},
		{"empty bus", "", [][]i2ctest.IO{owReset(0x08)}, "t: ds18b20 ds2482 /dev/i2c-1 0x18: open: search the 1-wire bus: no 1-wire device answered the reset pulse"},
		{"wrong id lists present", romA, [][]i2ctest.IO{
			readScratchpad(romAWire, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
			searchOps(t, romB),
		}, bridgePrefix + ": open: not found on the 1-wire bus (present: " + romB + "): the sensor did not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ops := append([][]i2ctest.IO{ds2482Init()}, tc.ops...)
			if tc.err == "" {
				spad := scratchpad(raw25_06, 9)
				ops = append(ops, readScratchpad(romAWire, spad), senseOps(romAWire, spad))
			}
			bus := newDS2482Bus(ops...)
			s, err := open(t, bridgeEnv(t, bus), "ds18b20", bridgeOpts(tc.id, 9))
			if tc.err != "" {
				wantErr(t, err, tc.err)
				if tc.name == "two DS18B20s" {
					wantErr(t, err, romA, romB, "set id to one of them")
				}
				closeBus(t, bus)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v, err := s.Read(context.Background()); err != nil || v[TemperatureC] != 25.06 {
				t.Fatalf("Read = %v, %v", v, err)
			}
			// The transcript is over, so this read fails: its error must
			// name the picked sensor.
			if _, err := s.Read(context.Background()); err == nil || !strings.HasPrefix(err.Error(), bridgePrefix+": read: ") {
				t.Errorf("error %v does not name the picked sensor", err)
			}
		})
	}
}

func TestDS18B20BridgeOpenErrors(t *testing.T) {
	t.Run("nothing at the address", func(t *testing.T) {
		bus := newDS2482Bus([]i2ctest.IO{dsIO([]byte{0xf0})})
		bus.fail = map[int]error{0: errI2C}
		_, err := open(t, bridgeEnv(t, bus), "ds18b20", bridgeOpts(romA, 9))
		wantErr(t, err, "t: ds18b20 ds2482 /dev/i2c-1 0x18: open: ds2482 bridge: no device answered at 0x18; check the wiring and the address (i2cdetect -y 1): ds248x: error while resetting: sysfs-i2c: remote I/O error")
	})
	t.Run("another chip at the address", func(t *testing.T) {
		bus := newDS2482Bus([]i2ctest.IO{dsIO([]byte{0xf0}), dsIO([]byte{0xe1, 0xf0}, 0x00)})
		_, err := open(t, bridgeEnv(t, bus), "ds18b20", bridgeOpts(romA, 9))
		wantErr(t, err, "open: ds2482 bridge: the chip at 0x18 is not a DS2482 (an MCP9808 also uses 0x18); check the address: ds248x: invalid status register value: 0x0, expected 0x18")
		closeBus(t, bus)
	})
	t.Run("address 0x19", func(t *testing.T) {
		ops := append(ds2482Init(), readScratchpad(romAWire, scratchpad(raw85, 9))...)
		for i := range ops {
			ops[i].Addr = 0x19
		}
		bus := newDS2482Bus(ops)
		o := bridgeOpts(romA, 9)
		o.Bridge.Address = 0x19
		s, err := open(t, bridgeEnv(t, bus), "ds18b20", o)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		closeBus(t, bus)
	})
	t.Run("no i2c bus", func(t *testing.T) {
		env := testEnv(t)
		want := errors.New("open i2c bus \"1\": no i2c bus on this host")
		env.I2C = func(string) (I2CBus, error) { return nil, want }
		_, err := open(t, env, "ds18b20", bridgeOpts(romA, 9))
		wantErr(t, err, "t: ds18b20 ds2482 /dev/i2c-1 0x18: open: open i2c bus")
		if !errors.Is(err, want) {
			t.Errorf("%v does not wrap %v", err, want)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		o := bridgeOpts(romA, 9)
		o.Bridge.Address = 0x1c
		_, err := open(t, testEnv(t), "ds18b20", o)
		wantErr(t, err, "t: ds18b20: bridge.address: 0x1c is a valid DS2482 address, but periph v3.7.4")
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d, _ := Lookup("ds18b20")
		_, err := d.Open(ctx, testEnv(t), bridgeOpts(romA, 9))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}

func TestDS18B20BridgeClose(t *testing.T) {
	bus := newDS2482Bus(ds2482Init(), readScratchpad(romAWire, scratchpad(raw85, 9)))
	s, err := open(t, bridgeEnv(t, bus), "ds18b20", bridgeOpts(romA, 9))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.Read(context.Background())
	wantErr(t, err, bridgePrefix+": read: sensor is closed")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	closeBus(t, bus) // nothing touched the bus after the open
}

func TestDS18B20BridgeValidate(t *testing.T) {
	br := func(bus string, addr int) *DS2482Bridge { return &DS2482Bridge{Bus: bus, Address: addr} }
	for _, tc := range []struct {
		name string
		opts DS18B20Opts
		want string // "" means valid
	}{
		{"kernel path", DS18B20Opts{ID: romA}, ""},
		{"bridge", DS18B20Opts{ID: romA, Bridge: br("1", 0x18), Resolution: 9}, ""},
		{"bridge 0x19, no id, default resolution", DS18B20Opts{Bridge: br("/dev/i2c-3", 0x19)}, ""},
		{"bridge default address", DS18B20Opts{Bridge: br("1", 0)}, ""},
		{"resolution without bridge", DS18B20Opts{Resolution: 10}, "resolution: only applies with bridge"},
		{"no bus", DS18B20Opts{Bridge: br("", 0x18)}, `bridge.bus: empty; set the I²C bus of the DS2482, e.g. "1"`},
		{"0x1a", DS18B20Opts{Bridge: br("1", 0x1a)}, "bridge.address: 0x1a is a valid DS2482 address, but periph v3.7.4 (devices/ds248x) does not accept it yet (only 0x18 and 0x19 work)"},
		{"0x1f", DS18B20Opts{Bridge: br("1", 0x1f)}, "bridge.address: 0x1f is a valid DS2482 address, but periph v3.7.4"},
		{"0x20, which periph accepts", DS18B20Opts{Bridge: br("1", 0x20)}, "bridge.address: 0x20 is not a DS2482 address; use 0x18 (AD0, AD1 to GND) or 0x19 (AD0 to VCC)"},
		{"0x17", DS18B20Opts{Bridge: br("1", 0x17)}, "bridge.address: 0x17 is not a DS2482 address"},
		{"resolution 8", DS18B20Opts{Bridge: br("1", 0x18), Resolution: 8}, "resolution: 8 bits is not supported; use 9, 10, 11 or 12"},
		{"resolution 13", DS18B20Opts{Bridge: br("1", 0x18), Resolution: 13}, "resolution: 13 bits is not supported"},
		{"DS18S20 id on the bridge", DS18B20Opts{ID: "10-000801b5a0f4", Bridge: br("1", 0x18)}, `id: "10-000801b5a0f4" has family 10, not a DS18B20 (28); the bridge path reads DS18B20s only`},
		{"bad id on the bridge", DS18B20Opts{ID: "28-XYZ", Bridge: br("1", 0x18)}, `id: "28-XYZ" is not a 1-wire ROM id`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tc.want)
		})
	}
}

// TestDS18B20BridgeYAML decodes the options strictly over the defaults, as
// the config loader does.
func TestDS18B20BridgeYAML(t *testing.T) {
	decode := func(doc string) (*DS18B20Opts, error) {
		d, _ := Lookup("ds18b20")
		o := d.NewOpts().(*DS18B20Opts)
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		if err := dec.Decode(o); err != nil {
			return nil, err
		}
		return o, o.Validate()
	}
	for _, tc := range []struct {
		doc  string
		want *DS18B20Opts
	}{
		{"id: 28-0316a2795a2f\nbridge: {bus: \"1\", address: 0x18}\nresolution: 9\n", bridgeOpts(romA, 9)},
		{"bridge:\n  bus: /dev/i2c-1\n", &DS18B20Opts{Bridge: &DS2482Bridge{Bus: "/dev/i2c-1"}}},
		{"id: 28-0316a2795a2f\n", &DS18B20Opts{ID: romA}},
	} {
		got, err := decode(tc.doc)
		if err != nil {
			t.Errorf("%q: %v", tc.doc, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %#v, want %#v", tc.doc, got, tc.want)
		}
	}
	if _, err := decode("bridge: {bus: \"1\", adress: 0x18}\n"); err == nil || !strings.Contains(err.Error(), "field adress not found") {
		t.Errorf("misspelt key: got %v", err)
	}
	if _, err := decode("bridge: {bus: \"1\", address: 0x1b}\n"); err == nil || !strings.Contains(err.Error(), "does not accept it yet") {
		t.Errorf("0x1b: got %v", err)
	}
}
