// Package shadow keeps the agent's Device Shadow: it reports the agent's
// state as `reported` and takes remote configuration from `desired`,
// over the same HTTPS path as publishing. The local YAML stays the base:
// desired state is an overlay on it, checked by the same strict rules.
package shadow

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sensor-agent/sensor-agent/agent/config"
)

// What desired state may set. Everything else is the file's: a wrong
// remote endpoint, certificate, proxy, state_dir or spool would cut the
// device off for good.
var (
	settableTop     = []string{"log_level", "publish", "sensors"}
	settablePublish = []string{"flush_interval", "max_readings", "max_rate"}
	settableSensor  = []string{"calibrate", "enabled", "interval", "limits"}
	neverRemote     = map[string]string{
		"endpoint":  "a wrong endpoint, certificate or proxy would cut the device off for good",
		"state_dir": "a wrong state_dir would lose the spool and the sequence counter",
		"spool":     "a wrong spool setting could lose readings",
		"device_id": "the device's name is its identity in every message",
		"shadow":    "a wrong shadow setting would stop remote configuration itself",
		"http":      "the local listener is the technician's, not the cloud's",
	}
)

// Overlay applies desired state to the config file's text and parses the
// result with the file's own rules. name is the file's name, for
// messages; lookup expands ${VAR} in the file as Parse does. The error
// names the desired key and what is wrong, ready to report as
// config_error.
func Overlay(file []byte, name string, desired map[string]any, lookup func(string) (string, bool)) (*config.Config, error) {
	if err := checkSettable(desired); err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(file, &doc); err != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: cannot overlay desired state: the file does not hold one mapping", name)
	}
	// Aliases become copies first: a change to an anchored entry must not
	// reach the entries that use it, nor the other way round.
	root := expand(doc.Content[0])
	doc.Content[0] = root
	if err := apply(root, desired); err != nil {
		return nil, err
	}
	merged, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("desired: %w", err)
	}
	cfg, err := config.Parse(name+" + desired state", merged, lookup)
	if err != nil {
		// The file loaded without the overlay: what fails is desired
		// state, and the merged text's line numbers mean nothing.
		msg := lineRE.ReplaceAllString(err.Error(), "desired: ")
		return nil, fmt.Errorf("%s", msg)
	}
	cfg.File = name
	return cfg, nil
}

var lineRE = regexp.MustCompile(`[^\n]* \+ desired state:\d+: `)

// checkSettable refuses every key desired state may not set, before
// anything is merged.
func checkSettable(desired map[string]any) error {
	var errs []string
	for _, k := range sortedKeys(desired) {
		v := desired[k]
		if why, ok := neverRemote[k]; ok {
			errs = append(errs, fmt.Sprintf("desired.%s: not settable remotely (%s); change it in the config file on the device", k, why))
			continue
		}
		if !slices.Contains(settableTop, k) {
			errs = append(errs, fmt.Sprintf("desired.%s: unknown or not settable remotely; settable: %s", k, strings.Join(settableTop, ", ")))
			continue
		}
		switch k {
		case "publish":
			errs = append(errs, checkKeys("desired.publish", v, settablePublish)...)
		case "sensors":
			m, ok := v.(map[string]any)
			if !ok {
				errs = append(errs, fmt.Sprintf("desired.sensors: want an object of sensor names, e.g. {\"greenhouse\": {\"interval\": \"10s\"}}, got %s", typeName(v)))
				continue
			}
			for _, s := range sortedKeys(m) {
				errs = append(errs, checkKeys("desired.sensors."+s, m[s], settableSensor)...)
			}
		}
	}
	errs = append(errs, checkNoEnv("desired", desired)...)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

func checkKeys(path string, v any, allowed []string) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("%s: want an object, got %s", path, typeName(v))}
	}
	var errs []string
	for _, k := range sortedKeys(m) {
		if !slices.Contains(allowed, k) {
			errs = append(errs, fmt.Sprintf("%s.%s: not settable remotely; settable here: %s", path, k, strings.Join(allowed, ", ")))
		}
	}
	return errs
}

// checkNoEnv refuses ${...} in remote strings: the file's variables
// would be expanded into them, and reported back to the cloud.
func checkNoEnv(path string, v any) []string {
	switch x := v.(type) {
	case string:
		if strings.Contains(x, "${") {
			return []string{fmt.Sprintf("%s: %q: ${...} is not expanded in desired state", path, x)}
		}
	case map[string]any:
		var errs []string
		for _, k := range sortedKeys(x) {
			errs = append(errs, checkNoEnv(path+"."+k, x[k])...)
		}
		return errs
	}
	return nil
}

// apply writes desired's values into the file's mapping.
func apply(root *yaml.Node, desired map[string]any) error {
	for _, k := range sortedKeys(desired) {
		switch v := desired[k].(type) {
		case map[string]any:
			if k == "sensors" {
				if err := applySensors(root, v); err != nil {
					return err
				}
				continue
			}
			m := mapping(root, k)
			for _, sub := range sortedKeys(v) {
				if err := set(m, sub, v[sub]); err != nil {
					return err
				}
			}
		default:
			if err := set(root, k, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func applySensors(root *yaml.Node, desired map[string]any) error {
	list := value(root, "sensors") // expanded: no alias, no node shared
	var names []string
	for _, name := range sortedKeys(desired) {
		v := desired[name]
		var entry *yaml.Node
		if list != nil && list.Kind == yaml.SequenceNode {
			for _, item := range list.Content {
				if n := value(item, "name"); n != nil && n.Value == name {
					entry = item
				}
			}
		}
		if entry == nil {
			if names == nil {
				names = sensorNames(list)
			}
			return fmt.Errorf("desired.sensors.%s: the config file has no sensor named %s (it has: %s)", name, name, strings.Join(names, ", "))
		}
		m := v.(map[string]any) // checked by checkSettable
		for _, k := range sortedKeys(m) {
			per, ok := m[k].(map[string]any)
			if k != "limits" && k != "calibrate" || !ok {
				if err := set(entry, k, m[k]); err != nil {
					return err
				}
				continue
			}
			// Per value name: the file's other values keep theirs.
			vals := mapping(entry, k)
			for _, vk := range sortedKeys(per) {
				if err := set(vals, vk, per[vk]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func sensorNames(list *yaml.Node) []string {
	var out []string
	if list != nil {
		for _, item := range list.Content {
			if n := value(item, "name"); n != nil {
				out = append(out, n.Value)
			}
		}
	}
	return out
}

// set replaces (or adds) key's value in mapping m.
func set(m *yaml.Node, key string, v any) error {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return fmt.Errorf("desired: %s: %w", key, err)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = &n
			return nil
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, &n)
	return nil
}

// mapping returns key's mapping in m, made when m has none.
func mapping(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			if v := m.Content[i+1]; v.Kind == yaml.MappingNode {
				return v
			}
			c := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			m.Content[i+1] = c
			return c
		}
	}
	c := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, c)
	return c
}

func value(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// expand returns a copy of n with every alias replaced by a copy of what
// it names, and no anchors: apply may then change any node in place. The
// file passed Parse's alias limits, so the copy is bounded.
func expand(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	c := *n
	c.Anchor = ""
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, ch := range n.Content {
		c.Content[i] = expand(ch)
	}
	return &c
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}
