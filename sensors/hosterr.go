package sensors

// periph reports a host that is not set up for the sensors in its own
// words ("i2creg: no bus found; did you forget to call Init()?", "are you
// member of group 'plugdev'?"), as text: its causes are formatted with %v.
// These turn them into what to do on a Raspberry Pi, keeping periph's error
// at the end of the chain. The drivers prefix them with the sensor and the
// bus or pin.

import (
	"fmt"
	"regexp"
	"strings"
)

// Advice, shared by the translations.
const (
	enableI2C     = "enable I²C with `sudo raspi-config nonint do_i2c 0` or dtparam=i2c_arm=on in /boot/firmware/config.txt, then reboot"
	enableOneWire = "enable 1-wire (dtoverlay=w1-gpio) with `sudo raspi-config nonint do_onewire 0` or dtoverlay=w1-gpio in /boot/firmware/config.txt, then reboot"
	joinGroup     = "add the service user to group %s (sudo usermod -aG %s sensor-agent), then restart the service"
)

var i2cDevFile = regexp.MustCompile(`/dev/i2c-[0-9]+`)

// i2cBusError explains why periph could not open I²C bus name; present
// lists the buses periph found on the host.
func i2cBusError(name string, present []string, err error) error {
	msg := err.Error()
	dev := i2cDevFile.FindString(msg)
	if dev == "" {
		dev = busLabel(i2cBusNumber(name))
	}
	switch {
	case len(present) == 0:
		// i2creg: "no bus found; did you forget to call Init()?" (it has
		// no bus at all), or "can't open unknown bus" before it.
		return fmt.Errorf("open i2c bus %q: no i2c bus on this host: %s: %w", name, enableI2C, err)
	case strings.Contains(msg, "unknown bus"):
		return fmt.Errorf("open i2c bus %q: no such bus (present: %s); set bus to one of them: %w", name, strings.Join(present, ", "), err)
	case strings.Contains(msg, "permission denied"):
		// sysfs-i2c: "are you member of group 'plugdev'?"; on Raspberry Pi
		// OS /dev/i2c-* belong to group i2c.
		return fmt.Errorf("open i2c bus %q: permission denied on %s: "+joinGroup+": %w", name, dev, "i2c", "i2c", err)
	case strings.Contains(msg, "is not configured"):
		// sysfs-i2c: the device file is gone (ENOENT).
		return fmt.Errorf("open i2c bus %q: %s does not exist: %s: %w", name, dev, enableI2C, err)
	}
	return fmt.Errorf("open i2c bus %q: %w", name, err)
}

// pinError explains why GPIO pin name was not found; present is how many
// pins periph found, failed the errors of periph's host drivers that did
// not load (gpioioctl without access to /dev/gpiochip*, for one).
func pinError(name string, present int, failed []error) error {
	if present > 0 {
		// Header names such as P1_11 are not gpioreg names, a common surprise.
		return fmt.Errorf("gpio pin %q not found: use the kernel line name, e.g. \"GPIO17\" (header positions like \"P1_11\" are not accepted)", name)
	}
	for _, err := range failed {
		if strings.Contains(err.Error(), "permission denied") {
			return fmt.Errorf("gpio pin %q: no gpio pins on this host: permission denied on /dev/gpiochip*: "+joinGroup+": %w", name, "gpio", "gpio", err)
		}
	}
	return fmt.Errorf("gpio pin %q: no gpio pins on this host (not a Raspberry Pi, or no access to /dev/gpiochip*: "+joinGroup+")", name, "gpio", "gpio")
}

// noOneWireBus is the error for a host without the kernel's w1 bus:
// devices (…/bus/w1/devices) does not exist.
func noOneWireBus(devices string, err error) error {
	return fmt.Errorf("no 1-wire bus (no %s): %s: %w", devices, enableOneWire, err)
}
