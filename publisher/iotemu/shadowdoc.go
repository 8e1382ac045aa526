package iotemu

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"strconv"
)

// The Device Shadow document model, as AWS IoT's developer guide describes
// it ("Device Shadow service documents", "Device Shadow error messages",
// and the quotas page):
//
//   - An update merges state.desired and state.reported into the stored
//     sections: objects merge key by key, recursively; any other value
//     (arrays included) replaces what was there; a null value deletes its
//     key; a section given as null is deleted whole.
//   - Every leaf written gets metadata {"timestamp": <epoch seconds>} at the
//     same place in metadata.desired / metadata.reported; an array gets an
//     array of its elements' metadata.
//   - delta holds the desired keys whose value differs from the reported
//     one, recursively for objects; keys only in reported are not in it.
//   - version starts at 1 and grows by one per accepted update; an update
//     that names a version other than the current one is refused 409. A
//     deleted shadow keeps its version, so one created again with the same
//     name goes on from it (AWS does so for 48 hours).
//
// Choices where the guide is silent, stated here and tested: an object
// left empty by an update (all its keys deleted, or written as {}) is
// removed, and so is a section left empty; "state": null clears both
// sections; numbers compare by value in the delta (1 and 1.0 are equal);
// nesting depth counts objects and arrays inside a section (a section
// {"a":1} is 1 deep).

// Shadow limits (AWS IoT quotas).
const (
	// MaxShadowState is the largest state part of a shadow document, in
	// bytes of compact JSON; metadata does not count.
	MaxShadowState = 8 * 1024
	// MaxShadowDepth is the deepest nesting inside desired or reported.
	MaxShadowDepth = 6
	// maxClientToken is the longest clientToken, in bytes.
	maxClientToken = 64
)

// shadowDoc is one stored shadow, or the tombstone of a deleted one
// (exists false, version kept).
type shadowDoc struct {
	exists  bool
	version int64
	// The sections and their metadata; nil when absent.
	desired, reported     map[string]any
	mdDesired, mdReported map[string]any
}

// shadowError is a refusal with AWS's status and message.
type shadowError struct {
	status  int
	message string
}

func (e *shadowError) Error() string { return e.message }

func badShadow(msg string) *shadowError { return &shadowError{status: 400, message: msg} }

// shadowUpdate is a parsed update request.
type shadowUpdate struct {
	state       map[string]any // the request's state; nil when state is null
	clearAll    bool           // "state": null
	version     int64
	hasVersion  bool
	clientToken string
	hasToken    bool
}

// parseShadowUpdate parses and checks an update request document.
func parseShadowUpdate(body []byte) (*shadowUpdate, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil || dec.More() {
		return nil, badShadow("Invalid JSON")
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return nil, badShadow("Invalid JSON")
	}
	u := &shadowUpdate{}
	state, ok := obj["state"]
	if !ok {
		return nil, badShadow("Missing required node: state")
	}
	if err := u.parseMeta(obj); err != nil {
		return nil, err
	}
	if state == nil {
		u.clearAll = true
		return u, nil
	}
	if u.state, ok = state.(map[string]any); !ok {
		return nil, badShadow("State node must be an object")
	}
	for k, v := range u.state {
		var name string
		switch k {
		case "desired":
			name = "Desired"
		case "reported":
			name = "Reported"
		default:
			return nil, badShadow("State contains an invalid node")
		}
		if _, isObj := v.(map[string]any); v != nil && !isObj {
			return nil, badShadow(name + " node must be an object")
		}
		if depth(v) > MaxShadowDepth {
			return nil, badShadow("JSON contains too many levels of nesting; maximum is " + strconv.Itoa(MaxShadowDepth))
		}
	}
	if size, _ := compactSize(u.state); size > MaxShadowState {
		return nil, &shadowError{status: 413, message: "The payload exceeds the maximum size allowed"}
	}
	return u, nil
}

// parseMeta reads version and clientToken.
func (u *shadowUpdate) parseMeta(obj map[string]any) error {
	if v, ok := obj["version"]; ok {
		n, isNum := v.(json.Number)
		if !isNum {
			return badShadow("Invalid version")
		}
		ver, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || ver < 0 {
			return badShadow("Invalid version")
		}
		u.version, u.hasVersion = ver, true
	}
	if v, ok := obj["clientToken"]; ok {
		tok, isStr := v.(string)
		if !isStr || len(tok) > maxClientToken {
			return badShadow("Invalid clientToken")
		}
		u.clientToken, u.hasToken = tok, true
	}
	return nil
}

// depth counts the objects and arrays nested in v, v included.
func depth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			d = max(d, depth(e))
		}
		return d + 1
	case []any:
		for _, e := range x {
			d = max(d, depth(e))
		}
		return d + 1
	}
	return 0
}

func compactSize(v any) (int, error) {
	b, err := json.Marshal(v)
	return len(b), err
}

// apply merges u into d at time ts, checking the version and the size of
// the result. It returns the accepted-response document.
func (d *shadowDoc) apply(u *shadowUpdate, ts int64) (*shadowAnswer, error) {
	if u.hasVersion && u.version != d.version {
		return nil, &shadowError{status: 409, message: "Version conflict"}
	}
	next := d.clone()
	respMeta := map[string]any{}
	if u.clearAll {
		next.desired, next.reported, next.mdDesired, next.mdReported = nil, nil, nil, nil
	}
	for _, sec := range []struct {
		name   string
		st, md *map[string]any
	}{
		{"desired", &next.desired, &next.mdDesired},
		{"reported", &next.reported, &next.mdReported},
	} {
		patch, ok := u.state[sec.name]
		if !ok {
			continue
		}
		respMeta[sec.name] = metadataOf(patch, ts)
		if patch == nil {
			*sec.st, *sec.md = nil, nil
			continue
		}
		if *sec.st == nil {
			*sec.st, *sec.md = map[string]any{}, map[string]any{}
		}
		merge(*sec.st, *sec.md, patch.(map[string]any), ts)
		if len(*sec.st) == 0 {
			*sec.st, *sec.md = nil, nil
		}
	}
	if size, _ := compactSize(next.stateSection(false)); size > MaxShadowState {
		return nil, &shadowError{status: 413, message: "The payload exceeds the maximum size allowed"}
	}
	next.exists = true
	next.version++
	*d = next
	resp := &shadowAnswer{Metadata: respMeta, Version: d.version, Timestamp: ts}
	if !u.clearAll {
		resp.State = u.state
	}
	if u.hasToken {
		resp.ClientToken = &u.clientToken
	}
	return resp, nil
}

// shadowAnswer is a document the shadow service answers with, its keys in
// AWS's order.
type shadowAnswer struct {
	State       any     `json:"state"`
	Metadata    any     `json:"metadata"`
	Version     int64   `json:"version"`
	Timestamp   int64   `json:"timestamp"`
	ClientToken *string `json:"clientToken,omitempty"`
}

// clone copies d deeply enough for apply to change the copy.
func (d *shadowDoc) clone() shadowDoc {
	c := *d
	c.desired, c.reported = deepCopy(d.desired), deepCopy(d.reported)
	c.mdDesired, c.mdReported = deepCopy(d.mdDesired), deepCopy(d.mdReported)
	return c
}

func deepCopy(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := maps.Clone(m)
	for k, v := range c {
		if sub, ok := v.(map[string]any); ok {
			c[k] = deepCopy(sub)
		}
	}
	return c
}

// merge applies patch to state and its metadata md.
func merge(state, md, patch map[string]any, ts int64) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(state, k)
			delete(md, k)
		case map[string]any:
			sub, ok := state[k].(map[string]any)
			subMD, _ := md[k].(map[string]any)
			if !ok || subMD == nil {
				sub, subMD = map[string]any{}, map[string]any{}
			}
			merge(sub, subMD, pv, ts)
			if len(sub) == 0 {
				delete(state, k)
				delete(md, k)
				continue
			}
			state[k], md[k] = sub, subMD
		default:
			state[k] = v
			md[k] = metadataOf(v, ts)
		}
	}
}

// metadataOf is the metadata of v written at ts: the same shape, with
// {"timestamp": ts} for each leaf.
func metadataOf(v any, ts int64) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = metadataOf(e, ts)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = metadataOf(e, ts)
		}
		return a
	}
	return map[string]any{"timestamp": ts}
}

// stateSection is the document's state: desired, reported and, when
// withDelta, delta; absent sections are left out.
func (d *shadowDoc) stateSection(withDelta bool) map[string]any {
	st := map[string]any{}
	if d.desired != nil {
		st["desired"] = d.desired
	}
	if d.reported != nil {
		st["reported"] = d.reported
	}
	if withDelta && d.desired != nil {
		if delta := deltaOf(d.desired, d.reported); len(delta) > 0 {
			st["delta"] = delta
		}
	}
	return st
}

// document is the GET answer at time ts.
func (d *shadowDoc) document(ts int64) *shadowAnswer {
	md := map[string]any{}
	if d.mdDesired != nil {
		md["desired"] = d.mdDesired
	}
	if d.mdReported != nil {
		md["reported"] = d.mdReported
	}
	return &shadowAnswer{State: d.stateSection(true), Metadata: md, Version: d.version, Timestamp: ts}
}

// deltaOf returns the keys of desired whose values differ from reported's,
// recursing into objects present on both sides.
func deltaOf(desired, reported map[string]any) map[string]any {
	delta := map[string]any{}
	for k, dv := range desired {
		rv, ok := reported[k]
		dm, dIsObj := dv.(map[string]any)
		rm, rIsObj := rv.(map[string]any)
		switch {
		case ok && dIsObj && rIsObj:
			if sub := deltaOf(dm, rm); len(sub) > 0 {
				delta[k] = sub
			}
		case !ok || !jsonEqual(dv, rv):
			delta[k] = dv
		}
	}
	return delta
}

// jsonEqual compares two decoded JSON values, numbers by value.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, err1 := x.Float64()
		fy, err2 := y.Float64()
		return err1 == nil && err2 == nil && fx == fy
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
