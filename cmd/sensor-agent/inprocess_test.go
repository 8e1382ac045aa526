package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
)

// fixedClock answers "is the clock synchronised?" for a command run in
// this process: a test cannot set the machine's synchronisation state.
func fixedClock(synced bool) func() (bool, string) {
	if synced {
		return func() (bool, string) { return true, "synchronised (set by the test)" }
	}
	return func() (bool, string) { return false, "NOT synchronised (set by the test)" }
}

// inProcessResult turns what a command run in this process returned into
// what the binary would have shown: its exit status and, for an error
// that is not an exit status, its message on stderr (as main's run does).
func inProcessResult(name string, err error, stdout, stderr *bytes.Buffer) result {
	var ee exitError
	code := 0
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		code = 2
	case errors.As(err, &ee):
		code = ee.code
	default:
		fmt.Fprintf(stderr, "sensor-agent %s: %v\n", name, err)
		code = 1
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}
