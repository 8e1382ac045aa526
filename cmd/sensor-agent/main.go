// Command sensor-agent polls sensors on a Raspberry Pi and publishes their
// readings to AWS IoT Core over HTTPS with mutual TLS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"syscall"

	"github.com/sensor-agent/sensor-agent/agent/config"
)

// Set by the Makefile with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"run":     {"run the agent (the systemd service's command)", cmdRun},
	"demo":    {"run the agent with simulated sensors against a local AWS IoT emulator", cmdDemo},
	"check":   {"validate the config, read every sensor once, print the readings", cmdCheck},
	"publish": {"publish one message from an argument or stdin to a topic", cmdPublish},
	"doctor":  {"check each link to AWS IoT (cert, clock, DNS, proxy, TCP, TLS, a test publish)", cmdDoctor},
	"emulate": {"run the AWS IoT HTTPS endpoint emulator", cmdEmulate},
	"spool":   {"inspect the on-disk spool: stats, verify, export", cmdSpool},
	"drivers": {"list the sensor drivers and their options", cmdDrivers},
	"scan":    {"probe an I²C bus and 1-wire for known sensors; print a config snippet", cmdScan},
	"shadow":  {"get, set the desired state of, or delete the device's shadow, with its certificate", cmdShadow},
	"status":  {"ask the running agent how it is: sensors, publishing, spool (exit 1 degraded, 3 not running)", cmdStatus},
	"version": {"print version, commit and Go version", cmdVersion},
}

// completion asks the other commands for their flags: added here, as
// commands cannot refer to itself.
func init() {
	commands["completion"] = command{"print the bash completion script: completion bash", cmdCompletion}
}

// Exit statuses (the man page's EXIT STATUS lists them).
const (
	exitOK      = 0 // success; also -h, --help
	exitFailure = 1 // a runtime failure: check or doctor found a problem, spool verify found damage, another agent runs, ...
	exitUsage   = 2 // bad command line: unknown command or flag, missing argument
	// status: no agent answers on the status socket (LSB's "program is
	// not running", as `systemctl status` uses it).
	exitNotRunning = 3
	exitConfig     = 78 // EX_CONFIG (sysexits.h; systemd: "CONFIG"): the config file cannot be read or is invalid
)

// errUsage marks errors already explained by a usage message.
var errUsage = errors.New("usage")

// exitError carries a specific exit status.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// configError is a config that does not load: exit status 78, which the
// unit's RestartPreventExitStatus= keeps systemd from restarting on.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// loadConfig is config.Load with its errors marked as configuration errors.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, configError{err}
	}
	return cfg, nil
}

func main() {
	tuneMemory(os.Getenv) // before anything allocates much
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal the default handling returns, so a second
	// Ctrl-C during the shutdown deadline stops at once.
	context.AfterFunc(ctx, stop)
	if len(os.Args) > 1 {
		limitProcs(os.Args[1], os.Getenv)
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stderr)
		return exitOK
	case "help": // help, or help COMMAND: that command's -h
		if len(args) == 1 || isHelp(args[1]) {
			usage(stderr)
			return exitOK
		}
		args = []string{args[1], "-h"}
	case "-version", "--version":
		args = []string{"version"}
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sensor-agent: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	err := cmd.run(ctx, args[1:], stdout, stderr)
	var ee exitError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.As(err, &ee):
		return ee.code
	}
	fmt.Fprintf(stderr, "sensor-agent %s: %v\n", args[0], err)
	if errors.As(err, new(configError)) {
		return exitConfig
	}
	return exitFailure
}

// isHelp reports whether arg asks for help.
// subcommand returns args[0] when it is one of subs (spool's, shadow's).
// Otherwise it prints usage and returns flag.ErrHelp for a help request,
// errUsage for anything else.
func subcommand(args, subs []string, usage func()) (string, error) {
	switch {
	case len(args) > 0 && isHelp(args[0]):
		usage()
		return "", flag.ErrHelp
	case len(args) == 0 || !slices.Contains(subs, args[0]):
		usage()
		return "", errUsage
	}
	return args[0], nil
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sensor-agent <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'sensor-agent <command> -h' for a command's flags.")
}

// newFlagSet returns a flag set that reports errors instead of exiting.
// When stderr is a *flagCollector (completion.go), the set is also handed
// to it: that is how the completion script and the tests learn every
// command's flags from the commands themselves.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sensor-agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if c, ok := stderr.(*flagCollector); ok {
		c.sets = append(c.sets, fs)
	}
	return fs
}

// parseFlags parses args, turning a flag error into errUsage (the flag
// package has already printed it).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

func cmdVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sensor-agent %s commit %s %s %s/%s\n", buildVersion(), buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// buildVersion is the version stamped by the Makefile (systemd/packaging/
// version.sh: the git tag, or a git describe string); a plain `go build`
// or `go install` gets the module version Go records from the tag ("dev"
// if it records none).
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// buildCommit is the stamped commit, else the revision a plain `go build`
// records itself.
func buildCommit() string {
	c := commit
	if c == "unknown" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	return c
}
