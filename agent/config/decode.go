package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder decodes a yaml.Node tree into Go structs strictly: every key must
// name a field (yaml tag), and every error carries the file, line and the
// full key path, e.g. `config.yaml:14: sensors[1].address: ...`. It collects
// all errors instead of stopping at the first, so one run shows them all.
type decoder struct {
	file  string
	errs  []error        // the first MaxListedErrors+1 problems
	total int            // every problem
	lines map[string]int // key path → line, for later validation errors
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.total++
	if len(d.errs) > MaxListedErrors {
		return // counted, not kept: a huge file of mistakes must not cost memory
	}
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errs = append(d.errs, fmt.Errorf("%s:%d: %s", d.file, line, msg))
}

func (d *decoder) err() error {
	if d.total == 0 {
		return nil
	}
	return &Errors{List: d.errs, Total: d.total}
}

// structFields maps yaml keys to field indexes for a struct type.
func structFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		m[tag] = i
	}
	return m
}

func keysOf(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// decodeStruct decodes mapping node n into the struct v points at. skip lists
// keys handled by the caller.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, skip map[string]bool) {
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return
		}
		d.errorf(n.Line, path, "want a mapping of keys, got a %s", kindName(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		kp := join(path, key)
		if prev, dup := seen[key]; dup {
			d.errorf(k.Line, kp, "duplicate key (first set on line %d)", prev)
			continue
		}
		seen[key] = k.Line
		d.lines[kp] = k.Line
		if skip[key] {
			continue
		}
		idx, ok := fields[key]
		if !ok {
			d.errorf(k.Line, kp, "unknown key%s; known keys here: %s", suggest(key, keysOf(fields)), strings.Join(keysOf(fields), ", "))
			continue
		}
		d.decodeValue(val, v.Field(idx), kp)
	}
}

func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.CanAddr() {
		if _, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
			if err := n.Decode(v.Addr().Interface()); err != nil {
				d.errorf(n.Line, path, "%s", cleanYAMLError(err))
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == sensorType {
			d.decodeSensor(n, v.Addr().Interface().(*Sensor), path)
			return
		}
		d.decodeStruct(n, v, path, nil)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Tag == "!!null" {
				return
			}
			d.errorf(n.Line, path, "want a list, got a %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decodeValue(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return
			}
			d.errorf(n.Line, path, "want a mapping, got a %s", kindName(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := path + "." + k.Value
			d.lines[kp] = k.Line
			key := reflect.New(v.Type().Key()).Elem()
			if err := k.Decode(key.Addr().Interface()); err != nil {
				d.errorf(k.Line, kp, "%s", cleanYAMLError(err))
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decodeValue(val, elem, kp)
			m.SetMapIndex(key, elem)
		}
		v.Set(m)
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decodeValue(n, v.Elem(), path)
	default:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, path, "want a single value, got a %s", kindName(n))
			return
		}
		// yaml.v3 would cut 1.5 down to 1 without a word.
		if k := v.Kind(); k >= reflect.Int && k <= reflect.Uint64 && n.ShortTag() == "!!float" {
			d.errorf(n.Line, path, "%s: want a whole number", n.Value)
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errorf(n.Line, path, "%s", cleanYAMLError(err))
		}
	}
}

var yamlErrLine = regexp.MustCompile(`^(yaml: )?(unmarshal errors:\s*)?(line \d+: )?`)

// cleanYAMLError strips yaml.v3's own "line N:" prefix (we print our own)
// and rewords its type messages.
func cleanYAMLError(err error) string {
	s := strings.TrimSpace(err.Error())
	s = yamlErrLine.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, "cannot unmarshal !!str", "wrong type: text")
	s = strings.ReplaceAll(s, "cannot unmarshal !!int", "wrong type: number")
	s = strings.ReplaceAll(s, "cannot unmarshal !!float", "wrong type: number")
	s = strings.ReplaceAll(s, "cannot unmarshal !!bool", "wrong type: true/false")
	s = strings.ReplaceAll(s, "cannot unmarshal !!seq", "wrong type: list")
	s = strings.ReplaceAll(s, "cannot unmarshal !!map", "wrong type: mapping")
	return s
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest returns ` (did you mean "x"?)` for a near miss.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${VAR} and ${VAR:-default} in every scalar value of the
// tree (keys are left alone). Done on the node tree so line numbers survive.
func (d *decoder) expandEnv(n *yaml.Node, lookup func(string) (string, bool)) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			sub := envRef.FindStringSubmatch(m)
			if v, ok := lookup(sub[1]); ok && v != "" {
				return v
			}
			if sub[2] != "" {
				return sub[3]
			}
			d.errorf(n.Line, "", "environment variable %s is not set (used as %s; write ${%s:-default} for a fallback)", sub[1], m, sub[1])
			return ""
		})
		// An expanded value is data, not YAML syntax: keep it a string
		// unless it now reads as a plain number or boolean.
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
			n.Tag = ""
		}
	}
	if n.Kind == yaml.MappingNode {
		for i := 1; i < len(n.Content); i += 2 {
			d.expandEnv(n.Content[i], lookup)
		}
		return
	}
	for _, c := range n.Content {
		d.expandEnv(c, lookup)
	}
}
