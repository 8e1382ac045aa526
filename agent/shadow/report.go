package shadow

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
)

// Facts are what a report says beyond the agent's snapshot.
type Facts struct {
	Version    string
	Started    time.Time // the process, not the config
	ConfigHash string    // of the file and the overlay applied
	Remote     agent.RemoteConfig
}

// maxState is what a report may take of AWS's 8 KB state limit, leaving
// room for the desired state stored next to it.
const maxState = 6 << 10

// Document is the reported state: the whole of it, to be diffed against
// the last one the shadow accepted. Times are whole seconds, so a value
// that did not change is not sent again.
func Document(s agent.Snapshot, pm agent.PublishMetrics, f Facts) map[string]any {
	doc := map[string]any{
		"agent": map[string]any{
			"version": f.Version, "started": stamp(f.Started), "config_hash": f.ConfigHash,
			"clock_synced": s.ClockSynced,
		},
		"route":   route(s.Route),
		"sensors": sensorsDoc(s.Sensors, true),
		"spool":   spoolDoc(s.Spool),
		"publish": publishDoc(s.Publish, pm),
		"remote":  remoteDoc(f.Remote),
	}
	if c := s.Certificate; c != nil {
		doc["certificate"] = map[string]any{"id": c.ID, "days_left": c.DaysLeft, "not_after": stamp(c.NotAfter)}
	}
	// The desired state in effect, also at its own paths: the shadow's
	// delta is then empty once the device has taken it, and what stays
	// in it was not (refused, or not yet polled).
	mergeInto(doc, f.Remote.Applied)
	if size(doc) > maxState {
		// Many sensors: their last values go first; health stays.
		doc["sensors"] = sensorsDoc(s.Sensors, false)
	}
	if size(doc) > maxState {
		// Still too many: only the failing ones, and a count of the rest.
		var failing []agent.SensorSnapshot
		for _, sn := range s.Sensors {
			if !sn.Healthy {
				failing = append(failing, sn)
			}
		}
		doc["sensors"] = sensorsDoc(failing, false)
		doc["sensors_healthy"] = len(s.Sensors) - len(failing)
	}
	return doc
}

// Healthy sums up what a change of must be reported at once: each
// sensor's health and whether publishing works.
func Healthy(s agent.Snapshot) string {
	b := make([]byte, 0, len(s.Sensors)+1)
	for _, sn := range s.Sensors {
		b = append(b, "01"[btoi(sn.Healthy)])
	}
	return string(append(b, "01"[btoi(s.Publish.LastError == "")]))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func route(r agent.Route) map[string]any {
	via := "direct"
	if r.Proxy != "" {
		via = "proxy"
	}
	return map[string]any{"port": r.Port, "alpn": r.ALPN, "fallback": r.Fallback, "via": via}
}

func sensorsDoc(list []agent.SensorSnapshot, values bool) map[string]any {
	out := make(map[string]any, len(list))
	for _, sn := range list {
		d := map[string]any{
			"driver": sn.Driver, "interval": sn.Interval, "healthy": sn.Healthy,
			"consecutive_errors": sn.ConsecutiveErrors, "error": nilIfEmpty(sn.LastError),
		}
		if values {
			d["last_reading"] = stamp(sn.LastReading)
			if len(sn.Values) > 0 {
				v := make(map[string]any, len(sn.Values))
				for k, x := range sn.Values {
					v[k] = x
				}
				d["values"] = v
			}
		}
		out[sn.Name] = d
	}
	return out
}

func spoolDoc(s agent.SpoolSnapshot) map[string]any {
	dropped := map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(s.Dropped)) {
		dropped[k] = s.Dropped[k]
	}
	return map[string]any{
		"pending": s.Pending, "oldest": unixOrNil(s.Oldest), "bytes": s.DiskBytes,
		"memory_mode": s.MemoryMode, "dropped": dropped, "dead_lettered": s.DeadLettered,
	}
}

func publishDoc(p agent.PublishState, pm agent.PublishMetrics) map[string]any {
	errs := map[string]any{}
	for k, n := range pm.ErrorsByKind {
		errs[k] = n
	}
	return map[string]any{"last_success": stamp(p.LastSuccess), "error": nilIfEmpty(p.LastError), "errors": errs}
}

func remoteDoc(r agent.RemoteConfig) map[string]any {
	var applied any
	if len(r.Applied) > 0 {
		applied = r.Applied
	}
	return map[string]any{"applied_version": r.Version, "applied": applied, "config_error": nilIfEmpty(r.Error)}
}

// mergeInto writes src's values into dst, objects key by key.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		sm, ok := v.(map[string]any)
		dm, ok2 := dst[k].(map[string]any)
		if ok && ok2 {
			dm = maps.Clone(dm) // dst's objects may be shared with the snapshot's
			mergeInto(dm, sm)
			dst[k] = dm
			continue
		}
		if ok {
			c := map[string]any{}
			mergeInto(c, sm)
			v = c
		}
		dst[k] = v
	}
}

// stamp is a time in whole seconds, UTC; nil for none.
func stamp(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// unixOrNil is Unix seconds, which fleet indexing can compare as a
// number (e.g. a backlog older than an hour).
func unixOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func size(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}

// Diff is what changed from prev to cur, as a shadow update: changed
// and new keys with their values, objects recursed into, keys gone as
// null (which deletes them from the shadow).
func Diff(prev, cur map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range cur {
		pv, had := prev[k]
		if m, ok := v.(map[string]any); ok {
			if pm, ok := pv.(map[string]any); ok && had {
				if d := Diff(pm, m); len(d) > 0 {
					out[k] = d
				}
				continue
			}
		}
		if !had && v == nil {
			continue // null deletes: there is nothing to delete
		}
		if !had || !equal(pv, v) {
			out[k] = v
		}
	}
	for k := range prev {
		if _, ok := cur[k]; !ok {
			out[k] = nil
		}
	}
	return out
}

// equal compares as JSON does: the shadow hands numbers back as float64.
func equal(a, b any) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
