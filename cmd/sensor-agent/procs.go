package main

import "runtime"

// limitProcs gives `run` one P (one thread running Go code at a time)
// unless GOMAXPROCS is set. The agent's work comes in bursts of a few
// hundred microseconds; with more Ps, every burst makes the scheduler
// wake idle threads to look for work to steal, which costs more than the
// work (the real binary at 10 × 10 Hz: 36 against 48 µs of CPU per
// reading with two; see the README). Blocking calls (a hung I2C read,
// an fsync) still hand the P to another thread, so one stuck sensor or
// disk does not stop the rest.
func limitProcs(cmd string, getenv func(string) string) {
	if cmd == "run" && getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
