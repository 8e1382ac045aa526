package publisher

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// AWS IoT Core topic limits.
const (
	MaxTopicBytes   = 256
	MaxTopicSlashes = 7 // not counting a Basic Ingest prefix
	maxRuleNameLen  = 128
)

// basicIngestPrefix starts topics that skip the broker and go straight to
// the rule named in the third level (no messaging charge).
const basicIngestPrefix = "$aws/rules/"

// ValidateTopic reports whether AWS IoT Core accepts topic for a publish:
// 1-256 bytes of valid UTF-8, no wildcards, at most 7 slashes (a Basic Ingest
// prefix $aws/rules/<rule>/ does not count) and no other reserved '$' topic.
func ValidateTopic(topic string) error {
	if topic == "" {
		return errors.New("invalid topic: empty")
	}
	if len(topic) > MaxTopicBytes {
		return fmt.Errorf("invalid topic: %d bytes, limit is %d", len(topic), MaxTopicBytes)
	}
	if !utf8.ValidString(topic) {
		return errors.New("invalid topic: not valid UTF-8")
	}
	// MQTT forbids U+0000 in topic names.
	if strings.IndexByte(topic, 0) >= 0 {
		return errors.New("invalid topic: contains a NUL character")
	}
	if i := strings.IndexAny(topic, "+#"); i >= 0 {
		return fmt.Errorf("invalid topic: contains the wildcard %q, which is only allowed in subscriptions", topic[i])
	}
	levels := topic
	if strings.HasPrefix(topic, "$") {
		rest, err := stripBasicIngest(topic)
		if err != nil {
			return err
		}
		levels = rest
	}
	if n := strings.Count(levels, "/"); n > MaxTopicSlashes {
		return fmt.Errorf("invalid topic: %d slashes, limit is %d (a $aws/rules/<rule>/ prefix does not count)", n, MaxTopicSlashes)
	}
	return nil
}

// stripBasicIngest returns what follows "$aws/rules/<rule>/" in topic, or an
// error when topic is any other reserved '$' topic. The bare form
// "$aws/rules/<rule>" is accepted: AWS describes the prefix as the first three
// levels and does not say a subtopic is required.
func stripBasicIngest(topic string) (string, error) {
	rest, ok := strings.CutPrefix(topic, basicIngestPrefix)
	if !ok {
		return "", errors.New("invalid topic: topics starting with '$' are reserved (only Basic Ingest $aws/rules/<rule>/... may be published to)")
	}
	rule, sub, _ := strings.Cut(rest, "/")
	if err := validateRuleName(rule); err != nil {
		return "", err
	}
	return sub, nil
}

func validateRuleName(rule string) error {
	if rule == "" {
		return errors.New("invalid topic: Basic Ingest topic has an empty rule name")
	}
	if len(rule) > maxRuleNameLen {
		return fmt.Errorf("invalid topic: Basic Ingest rule name is %d bytes, limit is %d", len(rule), maxRuleNameLen)
	}
	for i := 0; i < len(rule); i++ {
		c := rule[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("invalid topic: Basic Ingest rule name %q must match [a-zA-Z0-9_]+", rule)
		}
	}
	return nil
}

// EscapeTopic percent-encodes topic as a single URL path segment, '/' as %2F,
// so that no client or proxy collapses leading or doubled slashes.
func EscapeTopic(topic string) string {
	return url.PathEscape(topic)
}

// TopicTemplate is a topic with {device}, {sensor} and {driver} placeholders.
// The zero value is an empty template whose Render fails.
type TopicTemplate struct {
	raw   string
	parts []templatePart
}

type templatePart struct {
	lit string // literal text, when name == ""
	ph  string // placeholder name without braces
}

var templatePlaceholders = map[string]bool{"device": true, "sensor": true, "driver": true}

// ParseTopicTemplate parses s and checks that its literal parts form a valid
// topic, so that configuration errors surface at start-up, not at publish.
func ParseTopicTemplate(s string) (TopicTemplate, error) {
	t := TopicTemplate{raw: s}
	if s == "" {
		return TopicTemplate{}, errors.New("topic template is empty")
	}
	rest := s
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			t.parts = append(t.parts, templatePart{lit: rest})
			break
		}
		offset := len(s) - len(rest) + open
		if rest[open] == '}' {
			return TopicTemplate{}, fmt.Errorf("topic template %q: unbalanced '}' at offset %d", s, offset)
		}
		if open > 0 {
			t.parts = append(t.parts, templatePart{lit: rest[:open]})
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] == '{' {
			return TopicTemplate{}, fmt.Errorf("topic template %q: unbalanced '{' at offset %d", s, offset)
		}
		name := rest[open+1 : open+1+end]
		if !templatePlaceholders[name] {
			return TopicTemplate{}, fmt.Errorf("topic template %q: unknown placeholder {%s} (want {device}, {sensor} or {driver})", s, name)
		}
		t.parts = append(t.parts, templatePart{ph: name})
		rest = rest[open+1+end+1:]
	}
	// Sample values stand in for the placeholders; values are checked again
	// at Render time.
	sample := t.render(func(string) string { return "x" })
	if err := ValidateTopic(sample); err != nil {
		return TopicTemplate{}, fmt.Errorf("topic template %q: %w", s, err)
	}
	return t, nil
}

// String returns the template as it was parsed.
func (t TopicTemplate) String() string { return t.raw }

// Render substitutes the placeholders and validates the resulting topic.
// Values must be non-empty and must not contain '/', '+', '#' or NUL, which
// would change the topic's levels or make it a wildcard.
func (t TopicTemplate) Render(device, sensor, driver string) (string, error) {
	if len(t.parts) == 0 {
		return "", errors.New("topic template is empty")
	}
	values := map[string]string{"device": device, "sensor": sensor, "driver": driver}
	for _, p := range t.parts {
		if p.ph == "" {
			continue
		}
		v := values[p.ph]
		if v == "" {
			return "", fmt.Errorf("topic template %q: {%s} is empty", t.raw, p.ph)
		}
		if i := strings.IndexAny(v, "/+#\x00"); i >= 0 {
			return "", fmt.Errorf("topic template %q: {%s} value %q contains %q", t.raw, p.ph, v, v[i])
		}
	}
	topic := t.render(func(name string) string { return values[name] })
	if err := ValidateTopic(topic); err != nil {
		return "", fmt.Errorf("topic template %q: %w", t.raw, err)
	}
	return topic, nil
}

func (t TopicTemplate) render(value func(name string) string) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ph == "" {
			b.WriteString(p.lit)
		} else {
			b.WriteString(value(p.ph))
		}
	}
	return b.String()
}
