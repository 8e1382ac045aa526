package config

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds the config file. A real config is a few KB; a file
// many times larger is the wrong file, and reading and parsing it would
// cost the Pi memory for nothing.
const MaxFileSize = 1 << 20

// MaxAliasValues bounds how many values aliases (*name) may expand to in
// one file, counting every value reached through an alias, nested ones
// included. Aliases in a real config share a calibration block or a sensor
// template among a few dozen sensors: a few thousand values at most. Without
// a bound, a few KB of aliases to aliases expand to millions of values
// (404 MB and 20 s for a 7 KB file). yaml.v3's own guard is no help here:
// our decoder (decode.go) follows aliases itself, and yaml.v3 only counts
// within one Node.Decode call, failing when over 99% of its values come
// from aliases: 1,000 plain values allow 100,000 more through aliases,
// and each call starts a new count. 10,000 values decode in milliseconds
// and a few MB.
const MaxAliasValues = 10_000

// MaxListedErrors is how many problems an error lists; the rest are only
// counted, so that a file of a million unknown keys gives a screenful.
const MaxListedErrors = 20

// Errors is every problem found in a config file. Its message lists the
// first MaxListedErrors, one a line, then how many more there are.
type Errors struct {
	// List holds the problems in the order found, at most
	// MaxListedErrors+1 of them.
	List []error
	// Total counts every problem found, listed or not.
	Total int
}

func (e *Errors) Error() string {
	if e.Total <= len(e.List) {
		return errors.Join(e.List...).Error()
	}
	// Listing one more line than the cap is no longer than saying "and 1
	// more error": show it.
	shown := e.List[:min(len(e.List), MaxListedErrors)]
	return errors.Join(shown...).Error() + fmt.Sprintf("\n… and %d more errors", e.Total-len(shown))
}

// Unwrap gives the listed problems to errors.Is and errors.As.
func (e *Errors) Unwrap() []error { return e.List }

func tooLarge(name string, size int64) error {
	return fmt.Errorf("%s: the file is %d bytes, more than the %d (1 MiB) a config may have: a config is a few KB; check that this is the config file", name, size, MaxFileSize)
}

// checkAliases walks the tree as the decoders see it, aliases followed,
// before anything decodes it: every later decode (ours, and Node.Decode in
// yaml.Unmarshaler implementations and driver options) then visits at most
// the values counted here. It fails on the alias whose expansion passes
// MaxAliasValues, and on an alias inside the value it names, which would
// expand forever.
func (d *decoder) checkAliases(root *yaml.Node) error {
	w := &aliasWalk{file: d.file, active: map[*yaml.Node]bool{}}
	return w.walk(root, nil)
}

type aliasWalk struct {
	file   string
	spent  int                 // values reached through aliases so far
	active map[*yaml.Node]bool // anchored values being expanded
	outer  *yaml.Node          // the outermost alias being expanded
	path   string              // its key path
}

// walk visits n. path is n's key path outside aliases, nil inside one
// (where the outermost alias's path is reported).
func (w *aliasWalk) walk(n *yaml.Node, path []string) error {
	if w.outer != nil {
		if w.spent++; w.spent > MaxAliasValues {
			return w.fail(w.outer, "aliases expand to more than %d values; write the entries out or use fewer aliases", MaxAliasValues)
		}
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return nil
		}
		if w.active[n.Alias] {
			return w.fail(n, "the alias is inside the value it names, which would contain itself forever; write the value out")
		}
		if w.outer == nil {
			w.outer, w.path = n, pathString(path)
			defer func() { w.outer, w.path = nil, "" }()
		}
		w.active[n.Alias] = true
		defer delete(w.active, n.Alias)
		return w.walk(n.Alias, nil)
	}
	for i, c := range n.Content {
		var cp []string
		if w.outer == nil {
			switch n.Kind {
			case yaml.MappingNode:
				cp = append(path, "."+n.Content[i&^1].Value)
			case yaml.SequenceNode:
				cp = append(path, fmt.Sprintf("[%d]", i))
			default:
				cp = path
			}
		}
		if err := w.walk(c, cp); err != nil {
			return err
		}
	}
	return nil
}

// fail reports a problem at alias, named with the key path of the
// outermost alias being expanded.
func (w *aliasWalk) fail(alias *yaml.Node, format string, args ...any) error {
	what := fmt.Sprintf("alias *%s (anchor &%s on line %d)", alias.Value, alias.Value, alias.Alias.Line)
	if w.path != "" {
		what = w.path + ": " + what
	}
	return fmt.Errorf("%s:%d: %s: %s", w.file, alias.Line, what, fmt.Sprintf(format, args...))
}

func pathString(segs []string) string {
	return strings.TrimPrefix(strings.Join(segs, ""), ".")
}
