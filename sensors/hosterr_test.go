package sensors

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

// The errors below are periph's own, formatted as periph v3 formats them
// (conn/i2c/i2creg, host/sysfs/i2c.go, host/gpioioctl).
func TestHostErrorTranslations(t *testing.T) {
	t.Parallel()
	var (
		noBus      = errors.New("i2creg: no bus found; did you forget to call Init()?")
		unknownBus = errors.New(`i2creg: can't open unknown bus: "5"`)
		denied     = fmt.Errorf("sysfs-i2c: are you member of group 'plugdev'? %v", &fs.PathError{Op: "open", Path: "/dev/i2c-1", Err: fs.ErrPermission})
		gone       = fmt.Errorf("sysfs-i2c: bus #1 is not configured: %v", &fs.PathError{Op: "open", Path: "/dev/i2c-1", Err: fs.ErrNotExist})
		nack       = errors.New("sysfs-i2c: remote I/O error")
		gpioDenied = fmt.Errorf("gpioioctl: %w", fmt.Errorf("opening gpio chip /dev/gpiochip0 failed. error: %w", &fs.PathError{Op: "open", Path: "/dev/gpiochip0", Err: fs.ErrPermission}))
	)
	for _, tc := range []struct {
		name  string
		err   error
		cause error // must stay in the chain; nil for none
		want  string
	}{
		{"no i2c bus", i2cBusError("1", nil, noBus), noBus,
			"open i2c bus \"1\": no i2c bus on this host: enable I²C with `sudo raspi-config nonint do_i2c 0` or dtparam=i2c_arm=on in /boot/firmware/config.txt, then reboot: i2creg: no bus found; did you forget to call Init()?"},
		{"no i2c bus, named", i2cBusError("5", nil, unknownBus), unknownBus,
			"open i2c bus \"5\": no i2c bus on this host: enable I²C with `sudo raspi-config nonint do_i2c 0`"},
		{"bus not found by name", i2cBusError("5", []string{"/dev/i2c-1", "/dev/i2c-20"}, unknownBus), unknownBus,
			`open i2c bus "5": no such bus (present: /dev/i2c-1, /dev/i2c-20); set bus to one of them: i2creg: can't open unknown bus: "5"`},
		{"permission denied", i2cBusError("1", []string{"/dev/i2c-1"}, denied), denied,
			`open i2c bus "1": permission denied on /dev/i2c-1: add the service user to group i2c (sudo usermod -aG i2c sensor-agent), then restart the service: sysfs-i2c: are you member of group 'plugdev'? open /dev/i2c-1: permission denied`},
		{"permission denied, alias", i2cBusError("I2C1", []string{"/dev/i2c-1"}, denied), denied,
			`open i2c bus "I2C1": permission denied on /dev/i2c-1: add the service user to group i2c`},
		{"device file gone", i2cBusError("/dev/i2c-1", []string{"/dev/i2c-1"}, gone), gone,
			"open i2c bus \"/dev/i2c-1\": /dev/i2c-1 does not exist: enable I²C with `sudo raspi-config nonint do_i2c 0` or dtparam=i2c_arm=on in /boot/firmware/config.txt, then reboot: sysfs-i2c: bus #1 is not configured"},
		{"other bus error", i2cBusError("1", []string{"/dev/i2c-1"}, nack), nack,
			`open i2c bus "1": sysfs-i2c: remote I/O error`},
		{"no device answered", noAnswerHint("/dev/i2c-1", nack), nack,
			"no device answered; check the wiring and the address (i2cdetect -y 1): sysfs-i2c: remote I/O error"},
		{"other device error", noAnswerHint("1", errors.New("crc mismatch")), nil, "crc mismatch"},
		{"gpio pin not found", pinError("P1_11", 54, nil), nil,
			`gpio pin "P1_11" not found: use the kernel line name, e.g. "GPIO17" (header positions like "P1_11" are not accepted)`},
		{"no gpio pins", pinError("GPIO17", 0, nil), nil,
			`gpio pin "GPIO17": no gpio pins on this host (not a Raspberry Pi, or no access to /dev/gpiochip*: add the service user to group gpio (sudo usermod -aG gpio sensor-agent), then restart the service)`},
		{"gpio permission denied", pinError("GPIO17", 0, []error{errors.New("sysfs-i2c: no I²C bus found"), gpioDenied}), gpioDenied,
			`gpio pin "GPIO17": no gpio pins on this host: permission denied on /dev/gpiochip*: add the service user to group gpio (sudo usermod -aG gpio sensor-agent), then restart the service: gpioioctl: opening gpio chip /dev/gpiochip0 failed.`},
		{"no 1-wire bus", noOneWireBus("/sys/bus/w1/devices", fs.ErrNotExist), fs.ErrNotExist,
			"no 1-wire bus (no /sys/bus/w1/devices): enable 1-wire (dtoverlay=w1-gpio) with `sudo raspi-config nonint do_onewire 0` or dtoverlay=w1-gpio in /boot/firmware/config.txt, then reboot: file does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !strings.HasPrefix(tc.err.Error(), tc.want) {
				t.Errorf("got  %q\nwant %q", tc.err, tc.want)
			}
			wantErr(t, tc.err) // starts lowercase
			if tc.cause != nil && !errors.Is(tc.err, tc.cause) {
				t.Errorf("%q does not wrap %q", tc.err, tc.cause)
			}
		})
	}
}

// TestI2COpenNamesSensorAndBus: a driver puts its sensor, chip and bus in
// front of the translation.
func TestI2COpenNamesSensorAndBus(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env.I2C = func(name string) (I2CBus, error) {
		return nil, i2cBusError(name, nil, errors.New("i2creg: no bus found; did you forget to call Init()?"))
	}
	d, _ := Lookup("tmp102")
	_, err := d.Open(t.Context(), env, d.NewOpts())
	wantErr(t, err, "t: tmp102 /dev/i2c-1 0x48: open: open i2c bus \"1\": no i2c bus on this host: enable I²C with `sudo raspi-config nonint do_i2c 0`")
}
