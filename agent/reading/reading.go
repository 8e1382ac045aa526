// Package reading is the unit of data: one measurement of one sensor,
// stamped with a device-wide sequence number and UTC time.
package reading

import (
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/sensor-agent/sensor-agent/sensors"
)

// Reading is one measurement.
type Reading struct {
	Seq    uint64
	Sensor string
	Driver string
	Time   time.Time
	Values sensors.Values
	// Type is "" for a measurement, "health" for a sensor's health
	// record (values healthy and consecutive_errors, plus Error).
	Type  string
	Error string
	// LastSuccess is, on a health reading, the time of the sensor's last
	// good read (zero: none yet).
	LastSuccess time.Time
	// ClockUnsynced marks a reading taken before the system clock was
	// synchronised: its time may be far off (a Pi has no RTC). Encoded as
	// "clock_synced":false; absent when synchronised, to keep messages small.
	ClockUnsynced bool
}

// Health is the Type of a health reading.
const Health = "health"

// TimeLayout is RFC 3339 in UTC with exactly three fractional digits, so
// every stamp has the same width and sorts as text.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendTime appends t as UTC RFC 3339 with milliseconds.
func AppendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, TimeLayout)
}

// AppendJSON appends the reading as a JSON object:
// {"seq":1,"sensor":"x","time":"...","values":{"a":1}}, with
// "clock_synced":false after "time" when ClockUnsynced. Value names are
// sorted so the encoding is stable. Hand-written because it is the agent's
// hot path; TestAppendJSONMatchesEncodingJSON keeps it honest.
func (r *Reading) AppendJSON(b []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"sensor":`...)
	b = appendString(b, r.Sensor)
	return r.appendRest(b)
}

// AppendJSONWithDevice is AppendJSON with a leading "device" field, the
// shape of a message in the `single` format.
func (r *Reading) AppendJSONWithDevice(b []byte, device string) []byte {
	b = append(b, `{"device":`...)
	b = appendString(b, device)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"sensor":`...)
	b = appendString(b, r.Sensor)
	return r.appendRest(b)
}

func (r *Reading) appendRest(b []byte) []byte {
	if r.Type != "" {
		b = append(b, `,"type":`...)
		b = appendString(b, r.Type)
	}
	b = append(b, `,"time":"`...)
	b = AppendTime(b, r.Time)
	b = append(b, '"')
	if r.ClockUnsynced {
		b = append(b, `,"clock_synced":false`...)
	}
	b = append(b, `,"values":{`...)
	var keys [8]string
	names := keys[:0]
	for k := range r.Values {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendFloat(b, r.Values[k])
	}
	b = append(b, '}')
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.Error)
	}
	if !r.LastSuccess.IsZero() {
		b = append(b, `,"last_success":"`...)
		b = AppendTime(b, r.LastSuccess)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendFloat writes v as the shortest decimal; NaN and ±Inf, which JSON
// cannot carry, become null (drivers should never produce them).
func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

const hex = "0123456789abcdef"

// appendString writes s as a JSON string, escaping what JSON requires.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendString is appendString for other packages building envelopes.
func AppendString(b []byte, s string) []byte { return appendString(b, s) }
