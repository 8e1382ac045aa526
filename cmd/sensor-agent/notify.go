package main

// sd_notify(3) without a library: a datagram of "KEY=value" lines sent to
// the unix socket systemd names in $NOTIFY_SOCKET. The protocol is small
// and stable (it is what libsystemd's sd_notify does), so the agent keeps
// no dependency for it.

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// notifier talks to the service manager. A nil *notifier (not started by
// systemd, or a unit without Type=notify) does nothing.
type notifier struct {
	addr *net.UnixAddr
}

// newNotifier returns the notifier for $NOTIFY_SOCKET, nil when it is not
// set. A path starting with '@' is in the abstract namespace (Go's net
// package maps the '@' to the leading NUL itself).
func newNotifier(getenv func(string) string) (*notifier, error) {
	path := getenv("NOTIFY_SOCKET")
	switch {
	case path == "":
		return nil, nil
	case path[0] != '/' && path[0] != '@':
		// e.g. vsock:CID:PORT (systemd 254+, for VMs): not used on a Pi.
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: only unix socket paths are supported", path)
	}
	return &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}, nil
}

// send sends one message made of the given "KEY=value" lines. A new
// socket per message keeps working across `systemctl daemon-reexec`,
// which recreates systemd's socket; messages are a few per minute.
func (n *notifier) send(lines ...string) error {
	if n == nil || len(lines) == 0 {
		return nil
	}
	for _, l := range lines {
		if strings.ContainsRune(l, '\n') || !strings.Contains(l, "=") {
			return fmt.Errorf("sd_notify: bad line %q", l)
		}
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	msg := strings.Join(lines, "\n")
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// The messages the agent sends (see sd_notify(3)).
const (
	sdReady     = "READY=1"
	sdReloading = "RELOADING=1"
	sdStopping  = "STOPPING=1"
	sdWatchdog  = "WATCHDOG=1"
)

// sdStatus returns a STATUS= line: one line, at most maxStatus bytes, as
// `systemctl status` shows it.
func sdStatus(s string) string {
	const maxStatus = 200
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxStatus {
		s = s[:maxStatus-3] + "..."
	}
	return "STATUS=" + s
}

// watchdogInterval returns the service's WatchdogSec= from the environment
// systemd sets ($WATCHDOG_USEC, for this process only when $WATCHDOG_PID
// is absent or ours); 0 when the watchdog is off.
func watchdogInterval(getenv func(string) string, pid int) (time.Duration, error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return 0, nil // meant for another process
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return 0, errors.New("WATCHDOG_USEC=" + strconv.Quote(usec) + ": not a positive number of microseconds")
	}
	return time.Duration(n) * time.Microsecond, nil
}
