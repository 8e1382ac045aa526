package clock

import (
	"fmt"
	"syscall"
)

// adjtimex reads the kernel's NTP state: modes 0 changes nothing.
func adjtimex() (state, status int, err error) {
	var tx syscall.Timex
	state, err = syscall.Adjtimex(&tx)
	if err != nil {
		return 0, 0, fmt.Errorf("adjtimex: %w", err)
	}
	return state, int(tx.Status), nil
}
