package sensors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/ccs811"
)

// CCS811Opts configures the ccs811 driver (ScioSense/ams CCS811 eCO₂ and
// TVOC).
type CCS811Opts struct {
	// Bus is the I²C bus: "1", "I2C1" or "/dev/i2c-1".
	Bus string `yaml:"bus"`
	// Address is 0x5a (ADDR pin low) or 0x5b (ADDR pin high).
	Address int `yaml:"address"`
	// Mode is the drive mode: 1 measures every second, 2 every 10 s, 3
	// every 60 s. Read no more often than the mode measures. When changing
	// to a slower mode the datasheet asks for 10 minutes in idle first
	// (power the sensor off for 10 minutes).
	Mode int `yaml:"mode"`
}

// DefaultCCS811Opts are the defaults NewOpts returns for ccs811.
var DefaultCCS811Opts = CCS811Opts{
	Bus:     "1",
	Address: int(ccs811Chip.Addrs[0]),
	Mode:    1, // ccs811.DefaultOpts
}

var ccs811Modes = map[int]string{1: "every second", 2: "every 10 s", 3: "every 60 s"}

// target implements i2cOptions.
func (o *CCS811Opts) target() (string, int) { return o.Bus, o.Address }

// Validate implements Validator.
func (o *CCS811Opts) Validate() error {
	if err := checkI2C(o.Bus, o.Address, ccs811Chip, "address: %#x is not a CCS811 address; use 0x5a (ADDR low) or 0x5b (ADDR high)"); err != nil {
		return err
	}
	switch o.Mode {
	case 1, 2, 3:
	case 0:
		return errors.New("mode: 0 is idle (no measurements); use 1 (every second), 2 (every 10 s) or 3 (every 60 s)")
	case 4:
		return errors.New("mode: 4 updates only the raw data, never eco2/tvoc; use 1 (every second), 2 (every 10 s) or 3 (every 60 s)")
	default:
		return fmt.Errorf("mode: %d is not a CCS811 drive mode; use 1 (every second), 2 (every 10 s) or 3 (every 60 s)", o.Mode)
	}
	return nil
}

// ccs811Chip: 0x5a (ADDR low) or 0x5b (ADDR high), identified by HW_ID.
var ccs811Chip = &I2CChip{
	Addrs: []uint16{0x5a, 0x5b},
	Identify: func(b I2CBus, addr uint16) bool {
		id, ok := readReg(b, addr, ccs811HWID, 1)
		return ok && id[0] == ccs811HWIDValue
	},
	What: "ams CCS811 (HW_ID 0x81)",
}

// ccs811Limits are the datasheet's output ranges.
var ccs811Limits = map[string]Range{
	ECO2PPM: {Min: 400, Max: 8192},
	TVOCPPB: {Min: 0, Max: 1187},
}

func init() {
	Register(Driver{
		Name:    "ccs811",
		Doc:     "ScioSense CCS811 air quality on I²C: eco2_ppm, tvoc_ppb (no temperature/humidity compensation)",
		NewOpts: defaults(DefaultCCS811Opts),
		Open:    openCCS811,
		Limits:  ccs811Limits,
		I2C:     ccs811Chip,
	})
}

// CCS811 registers and STATUS bits (datasheet, "Register overview").
const (
	ccs811Status    = 0x00
	ccs811MeasMode  = 0x01
	ccs811AlgResult = 0x02
	ccs811HWID      = 0x20
	ccs811HWIDValue = 0x81
	ccs811ErrorID   = 0xe0

	ccs811StatusError     = 1 << 0
	ccs811StatusDataReady = 1 << 3
	ccs811StatusAppValid  = 1 << 4
	ccs811StatusFWMode    = 1 << 7
)

// ccs811ErrorBits names ERROR_ID's bits; periph names only single bits.
var ccs811ErrorBits = []string{
	"WRITE_REG_INVALID (write to an invalid register)",
	"READ_REG_INVALID (read from an invalid register)",
	"MEASMODE_INVALID (unsupported drive mode)",
	"MAX_RESISTANCE (sensor resistance out of range)",
	"HEATER_FAULT (heater current out of range)",
	"HEATER_SUPPLY (heater voltage not applied correctly)",
}

func ccs811ErrorText(id byte) string {
	var s []string
	for i, name := range ccs811ErrorBits {
		if id&(1<<i) != 0 {
			s = append(s, name)
		}
	}
	if id>>len(ccs811ErrorBits) != 0 {
		s = append(s, fmt.Sprintf("unknown bits %#02x", id&^(1<<len(ccs811ErrorBits)-1)))
	}
	return strings.Join(s, ", ")
}

// ccs811Sensor wraps periph's ccs811.Dev, reading ALG_RESULT_DATA through
// a txTap: periph masks eCO₂ and TVOC to their valid bits, which hides a
// corrupted transfer (the Raspberry Pi's I²C controller mishandles the
// CCS811's clock stretching); the raw bytes are checked here.
type ccs811Sensor struct {
	id   string // "office: ccs811 /dev/i2c-1 0x5a", prefix of every error
	addr uint16
	mode int

	mu     sync.Mutex // Read and Close may race when the scheduler gives up on a Read
	dev    *ccs811.Dev
	result []byte // ALG_RESULT_DATA as last read
}

var _ Sensor = (*ccs811Sensor)(nil)

func openCCS811(ctx context.Context, env Env, opts any) (Sensor, error) {
	o, c, err := openI2COpts[CCS811Opts](ctx, env, "ccs811", opts)
	if err != nil {
		return nil, err
	}
	s := &ccs811Sensor{id: c.id, addr: c.addr, mode: o.Mode}
	if err := s.open(c.bus); err != nil {
		return nil, c.openErr(err)
	}
	return s, nil
}

// open follows the datasheet's start-up: check HW_ID and that valid
// application firmware is present, APP_START and MEAS_MODE (periph's New,
// which checks neither), then that the chip runs the application without
// error and took the drive mode.
func (s *ccs811Sensor) open(bus i2c.Bus) error {
	raw := &i2c.Dev{Bus: bus, Addr: s.addr}
	reg := func(r byte) (byte, error) {
		b := make([]byte, 1)
		err := raw.Tx([]byte{r}, b)
		return b[0], err
	}
	hw, err := reg(ccs811HWID)
	if err != nil {
		return fmt.Errorf("read HW_ID: %w", err)
	}
	if hw != ccs811HWIDValue {
		return fmt.Errorf("HW_ID is %#02x, not a CCS811's 0x81: is another chip at this address?", hw)
	}
	st, err := reg(ccs811Status)
	if err != nil {
		return fmt.Errorf("read STATUS: %w", err)
	}
	if st&ccs811StatusAppValid == 0 {
		return fmt.Errorf("no valid application firmware on the sensor (STATUS %#02x)", st)
	}
	wasRunning := st&ccs811StatusFWMode != 0
	tap := &txTap{Bus: bus, after: s.observe}
	dev, err := ccs811.New(tap, &ccs811.Opts{Addr: s.addr, MeasurementMode: ccs811.MeasurementMode(s.mode)})
	if err != nil {
		return tap.cause(err)
	}
	if st, err = dev.ReadStatus(); err != nil {
		return fmt.Errorf("read STATUS: %w", err)
	}
	if st&ccs811StatusFWMode == 0 {
		return fmt.Errorf("still in boot mode after APP_START (STATUS %#02x)", st)
	}
	if st&ccs811StatusError != 0 {
		id, err := reg(ccs811ErrorID) // reading it clears the error
		if err != nil {
			return fmt.Errorf("read ERROR_ID: %w", err)
		}
		// periph always sends APP_START; when the application already
		// runs (an agent restart) that write is to an invalid register.
		if !(wasRunning && id == 1) {
			return fmt.Errorf("sensor error at start: %s (ERROR_ID %#02x)", ccs811ErrorText(id), id)
		}
	}
	mm, err := dev.GetMeasurementModeRegister()
	if err != nil {
		return fmt.Errorf("read MEAS_MODE: %w", err)
	}
	if int(mm.MeasurementMode) != s.mode {
		return fmt.Errorf("MEAS_MODE reads drive mode %d after writing %d", mm.MeasurementMode, s.mode)
	}
	s.dev = dev
	return nil
}

func (s *ccs811Sensor) observe(addr uint16, w, r []byte, err error) {
	if err == nil && addr == s.addr && len(w) == 1 && w[0] == ccs811AlgResult && len(r) == 8 {
		s.result = append(s.result[:0], r...)
	}
}

// Read reads ALG_RESULT_DATA: eCO₂ (2 bytes), TVOC (2), STATUS, ERROR_ID,
// RAW_DATA (2), and rejects it unless the application runs, no error is
// flagged and a new sample is ready (reading clears DATA_READY).
func (s *ccs811Sensor) Read(ctx context.Context) (Values, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	// periph takes no context: check before starting the I/O.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	s.result = s.result[:0]
	var v ccs811.SensorValues
	if err := s.dev.Sense(&v); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	r := s.result
	if len(r) != 8 {
		return nil, fmt.Errorf("%s: read: ALG_RESULT_DATA not seen on the bus", s.id)
	}
	st, errID := r[4], r[5]
	switch {
	case st&ccs811StatusFWMode == 0:
		return nil, fmt.Errorf("%s: read: sensor is in boot mode (STATUS %#02x): it was reset or lost power; it is restarted when the sensor is reopened", s.id, st)
	case st&ccs811StatusError != 0:
		return nil, fmt.Errorf("%s: read: sensor error: %s (ERROR_ID %#02x)", s.id, ccs811ErrorText(errID), errID)
	case st&ccs811StatusDataReady == 0:
		return nil, fmt.Errorf("%s: read: no new sample since the last read (data not ready; drive mode %d measures %s: read less often)", s.id, s.mode, ccs811Modes[s.mode])
	case r[0]&0xc0 != 0 || r[2]&0xf8 != 0:
		// periph masks these bits (eCO₂ & 0x3fff, TVOC & 0x7ff).
		return nil, fmt.Errorf("%s: read: corrupt result (eCO₂ %#04x, TVOC %#04x have bits set beyond the sensor's range): a bus fault; lower the I²C clock for the CCS811's clock stretching", s.id, uint16(r[0])<<8|uint16(r[1]), uint16(r[2])<<8|uint16(r[3]))
	}
	return Values{ECO2PPM: float64(v.ECO2), TVOCPPB: float64(v.VOC)}, nil
}

// Close forgets the device; periph has no Halt. The chip keeps measuring
// in its drive mode (heater on): powering it down is up to the wiring.
// It is idempotent; the bus stays open (shared).
func (s *ccs811Sensor) Close() error { return closeForget(&s.mu, &s.dev) }
