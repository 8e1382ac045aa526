package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneMemory(t *testing.T) {
	gc := debug.SetGCPercent(123)
	limit := debug.SetMemoryLimit(1 << 40)
	t.Cleanup(func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) })

	// The user's settings win: the runtime has already applied them.
	user := map[string]string{"GOGC": "123", "GOMEMLIMIT": "1TiB"}
	tuneMemory(func(k string) string { return user[k] })
	if got := debug.SetGCPercent(123); got != 123 {
		t.Errorf("GOGC set by the user: GC percent changed to %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("GOMEMLIMIT set by the user: limit changed to %d", got)
	}

	tuneMemory(func(string) string { return "" })
	if got := debug.SetGCPercent(123); got != gcPercent {
		t.Errorf("GC percent = %d, want the default %d", got, gcPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != memoryLimit {
		t.Errorf("memory limit = %d, want the default %d", got, memoryLimit)
	}
}

// Dropping the binary's read-only pages must leave the process running
// normally: the code faults back in from the page cache.
func TestReleaseBinaryPages(t *testing.T) {
	if err := releaseBinaryPages(); err != nil {
		t.Fatal(err)
	}
	if err := releaseBinaryPages(); err != nil { // and again, with the code just refaulted
		t.Fatal(err)
	}
}
