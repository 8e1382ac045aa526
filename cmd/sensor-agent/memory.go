package main

import (
	"log/slog"
	"runtime/debug"
	"time"
)

// The Go runtime's memory defaults for the agent, used unless the
// environment sets GOGC or GOMEMLIMIT (the user's choice wins; see the
// README's installation section). Measured with BenchmarkRSS (issue 11):
//
//   - gcPercent 50: the agent's live heap is under 1 MiB, so with Go's
//     default of 100 the heap runs to its 4 MiB floor before each
//     collection and the pages stay resident; at 50 the floor is 2 MiB
//     (1.6 MiB less RSS at 10 × 1 Hz) for a few extra collections a
//     minute, each well under a millisecond.
//   - memoryLimit 16 MiB: a ceiling, not the steady-state driver. It is
//     issue 11's 24 MiB peak less the ~8 MiB of the binary's own mapped
//     pages; draining a 1M-reading backlog stays under it (about 9 MiB),
//     so it does not slow the drain. Lower limits do: at 8–10 MiB the
//     collector runs almost continuously and the drain takes 4–8× longer.
const (
	gcPercent   = 50
	memoryLimit = 16 << 20
)

// tuneMemory applies the defaults above where getenv reports no
// GOGC or GOMEMLIMIT of the user's.
func tuneMemory(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}

// releaseAfterStart drops the pages start-up touched in the binary
// (releaseBinaryPages) now and again after settle, by when the first
// connection and publish have run too, so that what stays mapped is what
// the steady state uses. The returned func cancels the second release.
func releaseAfterStart(log *slog.Logger, settle time.Duration) (stop func() bool) {
	release := func() {
		if err := releaseBinaryPages(); err != nil {
			log.Debug("releasing the binary's start-up pages", "err", err)
		}
	}
	release()
	return time.AfterFunc(settle, release).Stop
}
