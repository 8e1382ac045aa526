package sensors

import (
	"fmt"
	"sync"
)

// The Close of the drivers: forget the device, or halt it first.

// halter is a device whose Halt powers it down or stops it.
type halter interface{ Halt() error }

// closeHalt halts *dev (when open) and forgets it, under mu. It is
// idempotent; the bus stays open (shared).
func closeHalt[D interface {
	comparable
	halter
}](mu *sync.Mutex, id string, dev *D) error {
	mu.Lock()
	defer mu.Unlock()
	var none D
	if *dev == none {
		return nil
	}
	h := *dev
	*dev = none
	if err := h.Halt(); err != nil {
		return fmt.Errorf("%s: close: %w", id, err)
	}
	return nil
}

// closeForget forgets *dev under mu, for chips that go idle by themselves
// or have nothing to power down. It is idempotent; the bus stays open.
func closeForget[D any](mu *sync.Mutex, dev *D) error {
	mu.Lock()
	defer mu.Unlock()
	var none D
	*dev = none
	return nil
}
