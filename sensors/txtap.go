package sensors

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"periph.io/x/conn/v3/i2c"
)

// txTap is an i2c.Bus between a periph driver and the real bus that lets
// our wrapper see each transaction. periph's drivers hide what happened on
// the wire: ina219 replaces I/O errors with sentinels, sgp30 never checks
// its CRCs, ccs811 masks bits, ads1x15 never checks that a conversion
// finished. Used by the ina219, sgp30, ccs811 and ads1x15 drivers.
type txTap struct {
	i2c.Bus
	// lock, if set, is held around each transaction (sgp30's background
	// goroutine takes the agent's bus lock this way).
	lock sync.Locker
	// before runs first; a non-nil error is returned instead of doing the
	// transaction. Optional.
	before func(addr uint16, w, r []byte) error
	// after sees each transaction's bytes and error. Optional.
	after func(addr uint16, w, r []byte, err error)

	mu      sync.Mutex
	lastErr error // the latest failed transaction's error, until takeErr
}

var _ i2c.Bus = (*txTap)(nil)

// Tx implements i2c.Bus.
func (t *txTap) Tx(addr uint16, w, r []byte) error {
	if t.lock != nil {
		t.lock.Lock()
		defer t.lock.Unlock()
	}
	var err error
	if t.before != nil {
		err = t.before(addr, w, r)
	}
	if err == nil {
		err = t.Bus.Tx(addr, w, r)
	}
	if err != nil {
		t.mu.Lock()
		t.lastErr = err
		t.mu.Unlock()
	}
	if t.after != nil {
		t.after(addr, w, r, err)
	}
	return err
}

// takeErr returns and forgets the latest transaction error.
func (t *txTap) takeErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.lastErr
	t.lastErr = nil
	return err
}

// cause adds the bus error behind err when periph replaced it with a
// sentinel or formatted it with %v: "failed to read bus voltage:
// sysfs-i2c: remote I/O error". Both stay reachable with errors.Is.
func (t *txTap) cause(err error) error {
	io := t.takeErr()
	if io == nil || errors.Is(err, io) || strings.Contains(err.Error(), io.Error()) {
		return err
	}
	return fmt.Errorf("%w: %w", err, io)
}
