package main

// `sensor-agent status`: asks the running agent for its snapshot on the
// status socket (statussock.go) and prints it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/config"
)

// statusTimeout bounds one question to the agent.
const statusTimeout = 10 * time.Second

// errNotRunning is no agent answering on a socket: none there, or nobody
// listening on it.
var errNotRunning = errors.New("no agent listening")

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stderr)
	cfgPath := fs.String("config", config.DefaultPath, "config file (its state_dir holds the socket when not run by systemd)")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sensor-agent status [-config FILE] [-json]")
		fmt.Fprintln(stderr, "Asks the running agent how it is: exit 0 healthy, 1 degraded, 3 not running.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rep, err := fetchStatus(ctx, *cfgPath, os.Getenv)
	if err != nil {
		var nr notRunningError
		if errors.As(err, &nr) {
			fmt.Fprintln(stderr, nr.message())
			return exitError{exitNotRunning}
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printStatus(stdout, rep, time.Now())
	}
	if len(rep.Problems) > 0 {
		return exitError{exitFailure}
	}
	return nil
}

// notRunningError says where no agent answered.
type notRunningError struct {
	tried     []string // socket paths
	errs      []error
	configErr error // the config did not load: state_dir's socket was not tried
}

func (e notRunningError) Error() string { return e.message() }

func (e notRunningError) message() string {
	var b strings.Builder
	b.WriteString("sensor-agent is not running: no agent answers on ")
	for i, p := range e.tried {
		if i > 0 {
			b.WriteString(" or ")
		}
		fmt.Fprintf(&b, "%s (%v)", p, e.errs[i])
	}
	if e.configErr != nil {
		fmt.Fprintf(&b, "; state_dir's socket not tried, the config does not load: %v", e.configErr)
	}
	b.WriteString(".\nSee `systemctl status sensor-agent` and `journalctl -u sensor-agent`.")
	return b.String()
}

// fetchStatus asks the agent: on the runtime directory's socket first
// ($RUNTIME_DIRECTORY, else /run/sensor-agent), so it works without
// reading the config, then on the config's state_dir/agent.sock.
func fetchStatus(ctx context.Context, cfgPath string, getenv func(string) string) (statusReport, error) {
	dir := runtimeDir(getenv)
	if dir == "" {
		dir = defaultRuntimeDir
	}
	var nr notRunningError
	try := func(path string) (statusReport, error) {
		rep, err := queryStatus(ctx, path)
		if errors.Is(err, errNotRunning) {
			nr.tried, nr.errs = append(nr.tried, path), append(nr.errs, errors.Unwrap(err))
		}
		return rep, err
	}
	rep, err := try(filepath.Join(dir, socketName))
	if !errors.Is(err, errNotRunning) {
		return rep, err
	}
	cfg, cerr := config.Load(cfgPath)
	if cerr != nil {
		nr.configErr = cerr
		return statusReport{}, nr
	}
	if p := filepath.Join(cfg.StateDir, socketName); p != nr.tried[0] {
		rep, err = try(p)
		if !errors.Is(err, errNotRunning) {
			return rep, err
		}
	}
	return statusReport{}, nr
}

// notRunning wraps a dial error that means no agent: errNotRunning, with
// the cause as its Unwrap.
type notRunning struct{ cause error }

func (e notRunning) Error() string        { return e.cause.Error() }
func (e notRunning) Unwrap() error        { return e.cause }
func (e notRunning) Is(target error) bool { return target == errNotRunning }

// queryStatus asks the agent listening on path.
func queryStatus(ctx context.Context, path string) (statusReport, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOTDIR):
		return statusReport{}, notRunning{cleanDialErr(err)}
	case errors.Is(err, syscall.EACCES):
		return statusReport{}, fmt.Errorf("status socket %s: %w: run as root or as a member of group sensor-agent", path, err)
	case err != nil:
		return statusReport{}, fmt.Errorf("status socket %s: %w", path, err)
	}
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://sensor-agent"+statusPath, nil)
	if err != nil {
		return statusReport{}, err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return statusReport{}, fmt.Errorf("status socket %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return statusReport{}, fmt.Errorf("status socket %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return statusReport{}, fmt.Errorf("status socket %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	var rep statusReport
	if err := json.Unmarshal(body, &rep); err != nil {
		return statusReport{}, fmt.Errorf("status socket %s: the answer: %w", path, err)
	}
	return rep, nil
}

// cleanDialErr is the errno of a dial error alone ("connection
// refused"): the message names the path already.
func cleanDialErr(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
