package sensors

// The ds18b20 driver's second path: a DS18B20 behind a DS2482 I²C→1-wire
// bridge, driven by periph's devices/ds248x and devices/ds18b20 instead of
// the kernel's w1_therm. It is chosen by the `bridge:` option:
//
//	- name: soil
//	  driver: ds18b20
//	  id: 28-0316a2795a2f        # optional with a single DS18B20 on the bridge
//	  bridge: {bus: "1", address: 0x18}
//	  resolution: 10             # 9..12 bits, default 12
//
// periph quirks handled here (periph.io/x/devices/v3 v3.7.4):
//
//   - ds248x.New accepts only 0x18, 0x19, 0x20 and 0x21. The DS2482-800
//     answers on 0x18..0x1F (AD0..AD2) and the DS2482-100 on 0x18..0x1B, so
//     0x1A..0x1F are wrongly rejected, and 0x20/0x21 are no DS2482 address
//     at all. Validate accepts 0x18 and 0x19 and says which is which.
//   - On a DS2482-800 ds248x.New selects channel IO0; the other seven
//     channels are not used (no channel option yet).
//   - ds248x.Dev has a persistent error model: after one I²C error every
//     later call returns that error. Any failed Read therefore drops the
//     ds248x.Dev and the ds18b20.Dev; the next Read creates both again
//     (which resets the bridge), so the sensor recovers by itself without
//     waiting for the scheduler to close and re-open it.
//   - ds18b20.Sense sleeps 94/188/375/750 ms for 9/10/11/12 bits, with no
//     way to interrupt it; the scheduler's read timeout must allow for it.
//   - ds18b20.New writes the resolution (and TH=TL=0) to the sensor's
//     EEPROM when the sensor's configuration differs.
//   - periph checks the scratchpad CRC, but its check for the 85 °C
//     power-on value is broken in v3.7.4: LastTemp compares the absolute
//     temperature with 85*physic.Celsius, i.e. 85 K (-188.15 °C), so 85 °C
//     passes as data. sense rejects it here; the -55..125 °C range check
//     rejects -127 °C and other garbage that passed the CRC.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ds18b20"
	"periph.io/x/devices/v3/ds248x"
)

// DS2482Bridge is the I²C side of a DS2482 (-100 or -800) or DS2483
// I²C→1-wire bridge.
type DS2482Bridge struct {
	// Bus is the I²C bus: "1", "I2C1" or "/dev/i2c-1". Required.
	Bus string `yaml:"bus"`
	// Address is the bridge's I²C address; 0 means 0x18 (AD0, AD1 to GND).
	// Only 0x18 and 0x19 work: periph v3.7.4 rejects 0x1A..0x1F.
	Address int `yaml:"address"`
}

// ds2482DefaultAddress is the bridge address when none is configured.
const ds2482DefaultAddress = 0x18

// ds2482Addrs are the DS2482's addresses: 0x18..0x1B on the -100 (AD0,
// AD1), 0x18..0x1F on the -800 (AD0..AD2).
var ds2482Addrs = span(0x18, 0x1F)

// addr returns the configured address or the default.
func (b *DS2482Bridge) addr() int {
	if b.Address == 0 {
		return ds2482DefaultAddress
	}
	return b.Address
}

// validateBridge checks the bridge-only options; DS18B20Opts.Validate
// calls it.
func (o *DS18B20Opts) validateBridge() error {
	if o.Bridge == nil {
		if o.Resolution != 0 {
			return fmt.Errorf("resolution: only applies with bridge; the kernel's w1_therm driver keeps the sensor's own setting (write 9..12 to /sys/bus/w1/devices/<id>/resolution to change it)")
		}
		return nil
	}
	b := o.Bridge
	if b.Bus == "" {
		return errors.New(`bridge.bus: empty; set the I²C bus of the DS2482, e.g. "1" for /dev/i2c-1`)
	}
	switch a := b.addr(); {
	case a == 0x18 || a == 0x19:
	case hasAddr(ds2482Addrs, a):
		return fmt.Errorf("bridge.address: %#x is a valid DS2482 address, but periph v3.7.4 (devices/ds248x) does not accept it yet (only 0x18 and 0x19 work); strap AD0/AD1 for 0x18 or 0x19", a)
	default:
		return fmt.Errorf("bridge.address: %#x is not a DS2482 address; use 0x18 (AD0, AD1 to GND) or 0x19 (AD0 to VCC)", a)
	}
	if o.Resolution != 0 && (o.Resolution < 9 || o.Resolution > 12) {
		return fmt.Errorf("resolution: %d bits is not supported; use 9, 10, 11 or 12 (conversion takes 94, 188, 375 or 750 ms)", o.Resolution)
	}
	if o.ID != "" && !strings.HasPrefix(o.ID, "28-") {
		return fmt.Errorf("id: %q has family %s, not a DS18B20 (28); the bridge path reads DS18B20s only", o.ID, o.ID[:2])
	}
	return nil
}

// bits returns the configured resolution or the default, 12 bits.
func (o *DS18B20Opts) bits() int {
	if o.Resolution == 0 {
		return 12
	}
	return o.Resolution
}

// romAddress converts a ROM id in the kernel's form, "28-0316a2795a2f", to
// periph's onewire.Address.
//
// The kernel names a slave "%02x-%012llx" from struct w1_reg_num: the
// family, then the 48-bit serial number as one little-endian integer
// printed most significant digit first (drivers/w1/w1.c). periph's Address
// is the same 64-bit little-endian ROM: family in the low byte, serial in
// the middle six, CRC8 of the first seven bytes in the high byte. So the
// kernel's hex digits appear unchanged in the Address:
// 28-0316a2795a2f is 0x820316a2795a2f28, sent on the wire as
// 28 2f 5a 79 a2 16 03 82.
func romAddress(id string) (onewire.Address, error) {
	if !w1ID.MatchString(id) {
		return 0, fmt.Errorf("%q is not a 1-wire ROM id like \"28-0316a2795a2f\"", id)
	}
	family, err := strconv.ParseUint(id[:2], 16, 8)
	if err != nil {
		return 0, err
	}
	serial, err := strconv.ParseUint(id[3:], 16, 48)
	if err != nil {
		return 0, err
	}
	a := serial<<8 | family
	var rom [7]byte
	for i := range rom {
		rom[i] = byte(a >> (8 * i))
	}
	return onewire.Address(uint64(onewire.CalcCRC(rom[:]))<<56 | a), nil
}

// romID is the kernel's name of a, the inverse of romAddress.
func romID(a onewire.Address) string {
	return fmt.Sprintf("%02x-%012x", uint64(a)&0xff, uint64(a)>>8&0xffffffffffff)
}

// ds18b20BridgeSensor reads one DS18B20 through a DS2482.
type ds18b20BridgeSensor struct {
	id      string // "soil: ds18b20 ds2482 /dev/i2c-1 0x18 28-0316a2795a2f", prefix of every error
	bus     I2CBus // shared; its lock is held by Open's wrapper around each Read
	busName string // as configured, for advice in errors
	addr    uint16
	rom     onewire.Address
	bits    int
	log     *slog.Logger

	mu     sync.Mutex // Read and Close may race when the scheduler gives up on a Read
	closed bool
	dev    *ds18b20.Dev // nil after an error: the next Read re-creates the bridge and it
}

var _ Sensor = (*ds18b20BridgeSensor)(nil)

func openDS18B20Bridge(ctx context.Context, env Env, o *DS18B20Opts) (Sensor, error) {
	addr := o.Bridge.addr()
	c, err := openI2C(ctx, env, "ds18b20 ds2482", o.Bridge.Bus, addr)
	if err != nil {
		return nil, err
	}
	id, bus := c.id, c.bus
	ow, err := newDS2482(bus, c.addr, o.Bridge.Bus)
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", id, err)
	}
	var rom onewire.Address
	if o.ID != "" {
		if rom, err = romAddress(o.ID); err != nil {
			return nil, fmt.Errorf("%s: open: id: %w", id, err)
		}
	} else {
		if rom, err = pickDS18B20(ow); err != nil {
			return nil, fmt.Errorf("%s: open: %w", id, err)
		}
		env.log().Info("ds18b20: picked the only DS18B20 on the ds2482 bridge", "id", romID(rom))
	}
	s := &ds18b20BridgeSensor{
		id:      id + " " + romID(rom),
		bus:     bus,
		busName: o.Bridge.Bus,
		addr:    uint16(addr),
		rom:     rom,
		bits:    o.bits(),
		log:     env.log(),
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: open: %w", s.id, err)
	}
	dev, err := ds18b20.New(ow, rom, s.bits)
	if err != nil {
		err = describeOneWire(err)
		if o.ID != "" && isBusError(err) {
			// Name what is there: a typo in the id is the usual cause.
			found, serr := ow.Search(false)
			if serr == nil {
				return nil, fmt.Errorf("%s: open: not found on the 1-wire bus (present: %s): %w", s.id, listOrNone(romIDs(found)), err)
			}
		}
		return nil, fmt.Errorf("%s: open: %w", s.id, err)
	}
	s.dev = dev
	return s, nil
}

// newDS2482 resets and configures the bridge (ds248x.New), turning its
// errors into advice. ds248x formats causes with %s, so there is no chain
// to keep.
func newDS2482(bus I2CBus, addr uint16, busName string) (*ds248x.Dev, error) {
	opts := ds248x.DefaultOpts // a copy: New must not share periph's global
	ow, err := ds248x.New(bus, addr, &opts)
	if err == nil {
		return ow, nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "invalid status register value"):
		return nil, fmt.Errorf("ds2482 bridge: the chip at %#x is not a DS2482 (an MCP9808 also uses 0x18); check the address: %w", addr, err)
	case strings.Contains(msg, "remote I/O error"):
		return nil, fmt.Errorf("ds2482 bridge: no device answered at %#x; check the wiring and the address (i2cdetect -y %s): %w", addr, i2cBusNumber(busName), err)
	default:
		return nil, fmt.Errorf("ds2482 bridge: %w", err)
	}
}

// pickDS18B20 searches the bus and returns the only DS18B20 on it.
func pickDS18B20(ow onewire.Bus) (onewire.Address, error) {
	found, err := ow.Search(false)
	if err != nil {
		return 0, fmt.Errorf("search the 1-wire bus: %w", describeOneWire(err))
	}
	var ds []onewire.Address
	for _, a := range found {
		if a&0xff == onewire.Address(ds18b20.DS18B20) {
			ds = append(ds, a)
		}
	}
	switch len(ds) {
	case 1:
		return ds[0], nil
	case 0:
		return 0, fmt.Errorf("no DS18B20 (28-*) on the 1-wire bus (present: %s); check the wiring and the pull-up", listOrNone(romIDs(found)))
	default:
		return 0, fmt.Errorf("%d DS18B20 sensors found (%s); set id to one of them", len(ds), strings.Join(romIDs(ds), ", "))
	}
}

func romIDs(as []onewire.Address) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = romID(a)
	}
	return out
}

// isBusError reports whether err is a 1-wire error (the bus or a sensor),
// rather than one of the bridge or its I²C bus.
func isBusError(err error) bool {
	var be onewire.BusError
	return errors.As(err, &be) && be.BusError()
}

// describeOneWire adds the likely cause to periph's 1-wire errors, keeping
// them in the chain. periph's messages are its only distinguishing mark.
func describeOneWire(err error) error {
	var short onewire.ShortedBusError
	msg := err.Error()
	switch {
	case errors.As(err, &short) && short.IsShorted():
		return fmt.Errorf("the 1-wire bus is shorted to ground; check the wiring: %w", err)
	case strings.Contains(msg, "no device present"):
		return fmt.Errorf("no 1-wire device answered the reset pulse; check the sensor's wiring, power and the pull-up: %w", err)
	case strings.Contains(msg, "incorrect scratchpad CRC"):
		return fmt.Errorf("scratchpad crc check failed (noisy or long wiring, or a weak pull-up): %w", err)
	case strings.Contains(msg, "device did not respond"):
		return fmt.Errorf("the sensor did not answer (unplugged, or a wrong id): %w", err)
	case strings.Contains(msg, "has not performed a temperature conversion"): // periph's 85 K check; see the file comment
		return fmt.Errorf("got 85 °C, the power-on value: no conversion ran (check the sensor's power; parasite power needs the strong pull-up): %w", err)
	case isBusError(err):
		return err
	default:
		return fmt.Errorf("ds2482 bridge: %w", err)
	}
}

// Read starts a conversion and reads the scratchpad: 94 ms (9 bits) to
// 750 ms (12 bits), spent sleeping inside periph, which takes no context.
func (s *ds18b20BridgeSensor) Read(ctx context.Context) (Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	if s.dev == nil {
		if err := s.reconnect(); err != nil {
			return nil, fmt.Errorf("%s: read: %w", s.id, err)
		}
	}
	v, err := s.sense()
	if err != nil {
		// ds248x's persistent error model: the Dev may be dead. Start
		// afresh on the next Read whatever went wrong; it costs a bridge
		// reset and one scratchpad read.
		s.dev = nil
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	return v, nil
}

// reconnect creates the bridge and the sensor again after an error.
func (s *ds18b20BridgeSensor) reconnect() error {
	ow, err := newDS2482(s.bus, s.addr, s.busName)
	if err != nil {
		return fmt.Errorf("re-create: %w", err)
	}
	dev, err := ds18b20.New(ow, s.rom, s.bits)
	if err != nil {
		return fmt.Errorf("re-create: %w", describeOneWire(err))
	}
	s.dev = dev
	s.log.Info("ds18b20: ds2482 bridge re-created after an error", "sensor", s.id)
	return nil
}

func (s *ds18b20BridgeSensor) sense() (Values, error) {
	var e physic.Env
	if err := s.dev.Sense(&e); err != nil {
		if !isBusError(err) {
			return nil, fmt.Errorf("ds2482 bridge failed; it is re-created on the next read: %w", err)
		}
		return nil, describeOneWire(err)
	}
	c := e.Temperature.Celsius()
	if c == 85 { // periph's own check looks for 85 K, see the file comment
		return nil, errors.New("got 85 °C, the power-on value: no conversion ran (check the sensor's power; parasite power needs the strong pull-up)")
	}
	if err := checkRange(TemperatureC, c, -55, 125); err != nil {
		return nil, fmt.Errorf("%w; the sensor did not answer properly", err)
	}
	return Values{TemperatureC: round2(c)}, nil
}

// Close forgets the devices; the I²C bus stays open (shared). ds248x and
// ds18b20 have nothing to halt. A closed sensor is not reopened: the
// scheduler opens a new one.
func (s *ds18b20BridgeSensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.dev = nil
	return nil
}
