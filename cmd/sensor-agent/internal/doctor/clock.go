package doctor

import (
	"fmt"
	"os"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/clock"
)

// The clock step: is the clock synchronised, and does it put now inside
// the certificate's validity.

// SystemClock asks the system whether the clock is synchronised, and
// says how it knows.
func SystemClock() (synced bool, how string) {
	synced = clock.New(clock.Options{}).Synced()
	_, fileErr := os.Stat(clock.TimesyncFile)
	switch {
	case synced && fileErr == nil:
		return true, "synchronised (systemd-timesyncd)"
	case synced:
		return true, "synchronised (the kernel's NTP state)"
	}
	return false, "NOT synchronised (no " + clock.TimesyncFile + ", and the kernel's NTP state says unsynchronised)"
}

// clock judges the clock; asking is how long asking whether it is
// synchronised took (before the certificate step, which needs the answer).
func (d *doctor) clock(synced bool, how string, asking time.Duration) {
	start := time.Now().Add(-asking)
	now := d.now()
	detail := fmt.Sprintf("%s; now %s", how, now.UTC().Format(time.RFC3339))
	const ntpHint = "check time synchronisation (timedatectl timesync-status): systemd-timesyncd needs UDP port 123 to an NTP server; if it is blocked, ask IT for an internal NTP server and set NTP= in /etc/systemd/timesyncd.conf"
	leaf := d.leaf
	switch {
	case leaf == nil && synced:
		d.result(StepClock, start, StatusPass, detail, "")
	case leaf == nil:
		d.result(StepClock, start, StatusWarn, detail, "readings carry clock_synced:false until it is; "+ntpHint)
	case synced && d.certValid:
		d.result(StepClock, start, StatusPass, detail+", inside the certificate's validity", "")
	case synced:
		d.result(StepClock, start, StatusPass, detail+", outside the certificate's validity (see certificate)", "")
	case d.certValid:
		d.result(StepClock, start, StatusWarn, detail+", inside the certificate's validity, so TLS works",
			"readings carry clock_synced:false until it is; "+ntpHint)
	case now.Before(leaf.NotBefore):
		d.result(StepClock, start, StatusFail,
			fmt.Sprintf("%s, BEFORE the certificate's validity (from %s): TLS fails until the clock is right (a Pi has no real-time clock and may boot in the past, even in 1970)",
				detail, leaf.NotBefore.UTC().Format(time.RFC3339)),
			"let NTP set the clock, or set it by hand (date -s); "+ntpHint)
	default:
		d.result(StepClock, start, StatusFail,
			fmt.Sprintf("%s, AFTER the certificate's expiry (%s): TLS fails, either because the clock is wrong or because the certificate has expired",
				detail, leaf.NotAfter.UTC().Format(time.RFC3339)),
			"let NTP set the clock; if the time is right, rotate the certificate; "+ntpHint)
	}
}
