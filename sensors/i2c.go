package sensors

// Helpers shared by the I²C drivers: the opening every driver does, the
// options every driver validates, and the hint for a part that does not
// answer.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"periph.io/x/conn/v3/i2c"
)

// I2CChip is how an I²C driver's chip is found on a bus: where it may
// answer and how `sensor-agent scan` tells it from other parts there.
type I2CChip struct {
	// Addrs are every address the chip can be strapped to, the default
	// first. Validate and scan both use them.
	Addrs []uint16
	// Identify reports whether the part answering at addr is this chip. It
	// must only read (no part is reconfigured by a scan). Nil means the
	// chip cannot be told apart safely: scan names it by address alone,
	// after every chip that has an Identify.
	Identify func(b I2CBus, addr uint16) bool
	// What is what scan prints for the part, e.g. "Bosch BME280 (chip id
	// 0x60 at 0xD0)" or "probably an Aosong AHT20 (address 0x38)".
	What string
}

// has reports whether addr is one of the chip's addresses.
func (c *I2CChip) has(addr int) bool { return hasAddr(c.Addrs, addr) }

// hasAddr reports whether addr, a configured int, is one of addrs.
func hasAddr(addrs []uint16, addr int) bool {
	return addr >= 0 && addr <= 0xffff && slices.Contains(addrs, uint16(addr))
}

// span lists the addresses lo..hi.
func span(lo, hi uint16) []uint16 {
	var out []uint16
	for a := lo; a <= hi; a++ {
		out = append(out, a)
	}
	return out
}

// I2COpts are the options of an I²C chip that needs no others: the
// AHT20Opts, AM2320Opts, MCP9808Opts and TMP102Opts types are I2COpts.
type I2COpts struct {
	// Bus is the I²C bus: "1", "I2C1" or "/dev/i2c-1".
	Bus string `yaml:"bus"`
	// Address is the chip's address; the driver's options type says which
	// addresses it can have.
	Address int `yaml:"address"`
}

// defaultI2COpts are the default options of chip: bus 1 and the chip's
// default address.
func defaultI2COpts(chip *I2CChip) I2COpts {
	return I2COpts{Bus: "1", Address: int(chip.Addrs[0])}
}

// errNoBus is the Validate error of an I²C driver's empty bus option.
var errNoBus = errors.New(`bus: empty; set the I²C bus, e.g. "1" for /dev/i2c-1`)

// checkI2C is the start of every I²C driver's Validate: the bus is set and
// the address is one of the chip's; bad is the driver's own wording for a
// wrong address (with one %#x verb for it).
func checkI2C(bus string, addr int, chip *I2CChip, bad string) error {
	if bus == "" {
		return errNoBus
	}
	if !chip.has(addr) {
		return fmt.Errorf(bad, addr)
	}
	return nil
}

// i2cConn is what an I²C driver's Open has in hand: the sensor's id for
// every error, the configured bus name for advice, and the opened bus.
type i2cConn struct {
	id   string // "greenhouse: bme280 /dev/i2c-1 0x76", prefix of every error
	name string // the bus as configured
	addr uint16
	bus  I2CBus
}

// newI2CConn names the sensor: env's sensor name, the chip, the bus and
// the address.
func newI2CConn(env Env, chip, bus string, addr int) *i2cConn {
	return &i2cConn{id: fmt.Sprintf("%s: %s %s %#x", env.Name, chip, busLabel(bus), addr), name: bus, addr: uint16(addr)}
}

// open checks ctx, then opens (or shares) the bus.
func (c *i2cConn) open(ctx context.Context, env Env) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: open: %w", c.id, err)
	}
	bus, err := env.I2C(c.name)
	if err != nil {
		return fmt.Errorf("%s: open: %w", c.id, err)
	}
	c.bus = bus
	return nil
}

// i2cOptions are options that name a bus and an address.
type i2cOptions interface {
	target() (bus string, addr int)
}

// openI2COpts is the start of an I²C driver's Open: the options checked
// (see openOpts), the sensor named and the bus opened.
func openI2COpts[T any, P interface {
	*T
	i2cOptions
}](ctx context.Context, env Env, chip string, opts any) (P, *i2cConn, error) {
	o, err := openOpts[T](env, chip, opts)
	if err != nil {
		return nil, nil, err
	}
	bus, addr := P(o).target()
	c, err := openI2C(ctx, env, chip, bus, addr)
	if err != nil {
		return nil, nil, err
	}
	return o, c, nil
}

// openI2C is newI2CConn and open.
func openI2C(ctx context.Context, env Env, chip, bus string, addr int) (*i2cConn, error) {
	c := newI2CConn(env, chip, bus, addr)
	return c, c.open(ctx, env)
}

// dev is the chip on the bus, for the drivers' own transactions.
func (c *i2cConn) dev() *i2c.Dev { return &i2c.Dev{Bus: c.bus, Addr: c.addr} }

// openErr prefixes an Open failure with the sensor id and, when no device
// answered, says what to check.
func (c *i2cConn) openErr(err error) error {
	return fmt.Errorf("%s: open: %w", c.id, noAnswerHint(c.name, err))
}

// noAnswerHint adds what to check to the kernel's EREMOTEIO, which is how
// a NACK (no part at the address) reaches us through periph: as text.
func noAnswerHint(bus string, err error) error {
	if strings.Contains(err.Error(), "remote I/O error") {
		return fmt.Errorf("no device answered; check the wiring and the address (i2cdetect -y %s): %w", i2cBusNumber(bus), err)
	}
	return err
}

// i2cBusNumber turns "/dev/i2c-1" and "I2C1" into "1" for i2cdetect.
func i2cBusNumber(bus string) string {
	for _, p := range []string{"/dev/i2c-", "I2C"} {
		if n, ok := strings.CutPrefix(bus, p); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return n
		}
	}
	return bus
}

// busLabel shows a bus number as its device file, the name people know.
func busLabel(bus string) string {
	if bus != "" && strings.Trim(bus, "0123456789") == "" {
		return "/dev/i2c-" + bus
	}
	return bus
}

// readReg reads n bytes of register r of the part at addr.
func readReg(b I2CBus, addr uint16, r byte, n int) ([]byte, bool) {
	buf := make([]byte, n)
	if err := b.Tx(addr, []byte{r}, buf); err != nil {
		return nil, false
	}
	return buf, true
}

// readReg16 reads the big-endian 16-bit register r.
func readReg16(b I2CBus, addr uint16, r byte) (uint16, bool) {
	v, ok := readReg(b, addr, r, 2)
	if !ok {
		return 0, false
	}
	return uint16(v[0])<<8 | uint16(v[1]), true
}

// sensirionCRC8 is the CRC of every Sensirion word (SCD4x, SGP30):
// polynomial 0x31, initial value 0xff, no reflection, no final XOR.
func sensirionCRC8(b []byte) byte {
	crc := byte(0xff)
	for _, x := range b {
		crc ^= x
		for range 8 {
			if crc&0x80 != 0 {
				crc = crc<<1 ^ 0x31
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
