package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// `sensor-agent shadow get|desire|delete`: the device's own Device Shadow
// through its own certificate and the agent's connection (ports, ALPN,
// proxy, fallback), for debugging in the field.

// shadowCommands are shadow's subcommands.
var shadowCommands = []string{"get", "desire", "delete"}

// defaultShadowName is the named shadow the agent uses, so that it does
// not clash with a user's classic shadow.
const defaultShadowName = config.DefaultShadowName

// maxDesireInput bounds what desire reads: AWS takes at most 8 KB of state.
const maxDesireInput = 64 << 10

func cmdShadow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "usage: sensor-agent shadow get|desire|delete [-config FILE] [-thing THING] [-name NAME] [FRAGMENT | -]")
		fmt.Fprintln(stderr, "  get     print the shadow document (state, metadata, version) as indented JSON")
		fmt.Fprintln(stderr, `  desire  set desired state: POST {"state":{"desired":FRAGMENT}}; FRAGMENT is JSON or YAML, the argument or stdin (-)`)
		fmt.Fprintln(stderr, "  delete  delete the shadow")
		fmt.Fprintln(stderr, "Exit status 1 when the shadow does not exist or AWS IoT refuses the request.")
	}
	sub, err := subcommand(args, shadowCommands, usage)
	if err != nil {
		return err
	}
	fs := newFlagSet("shadow "+sub, stderr)
	cfgPath := fs.String("config", config.DefaultPath, "config file to take the endpoint, certificate and device_id from")
	thing := fs.String("thing", "", "thing name (default: the config's shadow.thing, else device_id)")
	name := fs.String("name", defaultShadowName, `shadow name (default: the config's shadow.name, else sensor-agent); "" for the classic shadow`)
	fs.Usage = func() { usage(); fs.PrintDefaults() }
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if (sub == "desire") != (fs.NArg() == 1) || fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *thing == "" {
		*thing = cfg.Shadow.Thing // device_id unless the config names the thing
	}
	if !flagSet(fs, "name") {
		*name = cfg.Shadow.Name
	}
	sc := shadowCmd{thing: *thing, name: *name, stdout: stdout}
	c, err := publisher.New(cfg.PublisherConfig(), newLogger(stderr, "warn"))
	if err != nil {
		return err
	}
	defer c.Close()
	sc.client = c
	switch sub {
	case "get":
		return sc.get(ctx)
	case "desire":
		return sc.desire(ctx, fs.Arg(0))
	}
	return sc.delete(ctx)
}

// shadowCmd is one shadow command's target.
type shadowCmd struct {
	client      *publisher.Client
	thing, name string
	stdout      io.Writer
}

// ref names the shadow for messages.
func (sc shadowCmd) ref() string {
	if sc.name == "" {
		return "classic shadow of thing " + sc.thing
	}
	return "shadow " + sc.name + " of thing " + sc.thing
}

// do makes the request; a missing shadow is said plainly.
func (sc shadowCmd) do(ctx context.Context, method string, body []byte) ([]byte, error) {
	reply, err := sc.client.Shadow(ctx, method, sc.thing, sc.name, body)
	if se, ok := errors.AsType[*publisher.ShadowError](err); ok && se.Status == http.StatusNotFound {
		return nil, fmt.Errorf("no %s: nothing was reported or desired yet, or it was deleted (404 %s: %s)", sc.ref(), se.Type, se.Message)
	}
	if err != nil {
		return nil, err
	}
	return reply.Body, nil
}

func (sc shadowCmd) get(ctx context.Context) error {
	body, err := sc.do(ctx, http.MethodGet, nil)
	if err != nil {
		return err
	}
	return printIndented(sc.stdout, body)
}

func (sc shadowCmd) desire(ctx context.Context, arg string) error {
	fragment, err := readFragment(arg, os.Stdin)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(map[string]any{"state": map[string]json.RawMessage{"desired": fragment}})
	if err != nil {
		return fmt.Errorf("desired state for thing %s: %w", sc.thing, err)
	}
	body, err := sc.do(ctx, http.MethodPost, doc)
	if err != nil {
		return err
	}
	return printIndented(sc.stdout, body)
}

func (sc shadowCmd) delete(ctx context.Context) error {
	body, err := sc.do(ctx, http.MethodDelete, nil)
	if err != nil {
		return err
	}
	var v struct{ Version int64 }
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("delete %s: answer %q: %w", sc.ref(), body, err)
	}
	fmt.Fprintf(sc.stdout, "deleted the %s (it was at version %d)\n", sc.ref(), v.Version)
	return nil
}

// readFragment reads the desired-state fragment, the argument or stdin
// when it is "-", as JSON or, failing that, YAML, and returns it as JSON.
// It must be an object, or null to clear the desired state.
func readFragment(arg string, stdin io.Reader) (json.RawMessage, error) {
	src := []byte(arg)
	if arg == "-" {
		var err error
		if src, err = io.ReadAll(io.LimitReader(stdin, maxDesireInput+1)); err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		if len(src) > maxDesireInput {
			return nil, fmt.Errorf("desired state on stdin is over %d bytes; AWS IoT takes at most %d bytes of state", maxDesireInput, 8<<10)
		}
	}
	trimmed := bytes.TrimSpace(src)
	if len(trimmed) == 0 {
		return nil, errors.New(`desired state is empty: give a JSON object or YAML mapping (null clears the desired state)`)
	}
	var v any
	if json.Valid(trimmed) {
		if err := json.Unmarshal(trimmed, &v); err != nil {
			return nil, fmt.Errorf("desired state: %w", err)
		}
		if _, ok := v.(map[string]any); !ok && v != nil {
			return nil, errors.New("desired state must be a JSON object (or null to clear it)")
		}
		return json.RawMessage(trimmed), nil
	}
	if err := yaml.Unmarshal(src, &v); err != nil {
		return nil, fmt.Errorf("desired state is neither JSON nor YAML: %w", err)
	}
	if _, ok := v.(map[string]any); !ok && v != nil {
		return nil, errors.New("desired state must be a mapping of keys to values (JSON object or YAML mapping)")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("desired state cannot be JSON (keys must be strings): %w", err)
	}
	return b, nil
}

func printIndented(w io.Writer, body []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		return fmt.Errorf("shadow answer is not JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// flagSet says whether the command line gave the flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
