// Package batch groups encoded readings into messages, one stream per
// topic, and flushes a topic's message when it reaches max_readings, when
// one more reading would take it over max_bytes (envelope included), or
// when its oldest reading has waited flush_interval. The envelope itself
// (device, incarnation, sent_at, dropped) is written at send time by
// Envelope, so a message retried later still says when it was sent.
package batch

import (
	"strconv"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/reading"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// MaxPayload is AWS IoT's publish payload limit, as the publisher enforces it.
const MaxPayload = publisher.MaxPayload

// MaxDropped bounds the dropped ranges one message reports, so the
// envelope's size stays bounded; the rest go in later messages.
const MaxDropped = 8

// droppedReserve is room kept free in every message for the dropped
// field, so a message never passes MaxPayload once it is added.
const droppedReserve = len(`,"dropped":[]`) + MaxDropped*(len(`{"first":18446744073709551615,"last":18446744073709551615,"count":18446744073709551615,"reason":"","incarnation":"00000000000000000000000000000000"},`)+maxReason)

// incLen is the length of an incarnation id (32 hex digits).
const incLen = 32

// Stream is what the readings of one message share: the topic, and the
// incarnation their seqs were numbered under ("" = the envelope's, given
// at send time).
type Stream struct {
	Topic       string
	Incarnation string
	// Volatile marks an incarnation that lives only in memory: the seqs
	// were numbered while the disk could not be written (see the agent).
	Volatile bool
}

// Batch is the readings of one message.
type Batch struct {
	Stream
	Seqs []uint64 // seq of each reading, in order
	Ends []int    // end offset in Body of each reading
	Body []byte   // the readings' JSON objects, comma separated
}

// Count is the number of readings.
func (b *Batch) Count() int { return len(b.Seqs) }

// Split returns the two halves of a batch of two or more readings (for a
// message the server found too large).
func (b *Batch) Split() (Batch, Batch) {
	h := len(b.Seqs) / 2
	cut := b.Ends[h-1]
	first := Batch{Stream: b.Stream, Seqs: b.Seqs[:h:h], Ends: b.Ends[:h:h], Body: b.Body[:cut:cut]}
	second := Batch{Stream: b.Stream, Seqs: b.Seqs[h:], Body: b.Body[cut+1:]}
	for _, e := range b.Ends[h:] {
		second.Ends = append(second.Ends, e-cut-1)
	}
	return first, second
}

// Reading returns the JSON of reading i.
func (b *Batch) Reading(i int) []byte {
	start := 0
	if i > 0 {
		start = b.Ends[i-1] + 1
	}
	return b.Body[start:b.Ends[i]]
}

// Dropped is a range of readings lost before they could be sent.
type Dropped struct {
	First, Last, Count uint64
	Reason             string // "spool full", "corrupt", "lost by storage", "memory full", "spool deleted"
	// Incarnation the seqs were numbered under, when not the message's.
	Incarnation string
}

// maxReason bounds Reason's length in the envelope.
const maxReason = 24

// Meta is what the envelope says besides the readings.
type Meta struct {
	Device      string
	Incarnation string
	SentAt      time.Time
	Dropped     []Dropped // at most MaxDropped
}

// Envelope appends the message for b. Batch format:
//
//	{"device":"d","incarnation":"i","sent_at":"...","dropped":[...],"readings":[...]}
//
// Single format (one reading, its fields after device and incarnation):
//
//	{"device":"d","incarnation":"i","dropped":[...],"seq":1,"sensor":...}
//
// The incarnation is b's, else m's; a volatile one is followed by
// "volatile":true.
func Envelope(dst []byte, m Meta, b *Batch, single bool) []byte {
	dst = append(dst, `{"device":`...)
	dst = reading.AppendString(dst, m.Device)
	inc := b.Incarnation
	if inc == "" {
		inc = m.Incarnation
	}
	if inc != "" {
		dst = append(dst, `,"incarnation":`...)
		dst = reading.AppendString(dst, inc)
	}
	if b.Volatile {
		dst = append(dst, `,"volatile":true`...)
	}
	if !single {
		dst = append(dst, `,"sent_at":"`...)
		dst = reading.AppendTime(dst, m.SentAt)
		dst = append(dst, '"')
	}
	if len(m.Dropped) > 0 {
		dst = append(dst, `,"dropped":[`...)
		for i, d := range m.Dropped[:min(len(m.Dropped), MaxDropped)] {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"first":`...)
			dst = strconv.AppendUint(dst, d.First, 10)
			dst = append(dst, `,"last":`...)
			dst = strconv.AppendUint(dst, d.Last, 10)
			dst = append(dst, `,"count":`...)
			dst = strconv.AppendUint(dst, d.Count, 10)
			if d.Reason != "" {
				dst = append(dst, `,"reason":`...)
				dst = reading.AppendString(dst, d.Reason[:min(len(d.Reason), maxReason)])
			}
			if d.Incarnation != "" && d.Incarnation != inc {
				dst = append(dst, `,"incarnation":`...)
				dst = reading.AppendString(dst, d.Incarnation[:min(len(d.Incarnation), incLen)])
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if single {
		// The reading's own object, without its opening brace.
		dst = append(dst, ',')
		return append(dst, b.Body[1:]...)
	}
	dst = append(dst, `,"readings":[`...)
	dst = append(dst, b.Body...)
	return append(dst, "]}"...)
}

// Options configures a Batcher.
type Options struct {
	Device        string
	Incarnation   string
	MaxReadings   int
	MaxBytes      int
	FlushInterval time.Duration
	// Single sends one reading per message.
	Single bool
}

// Batcher accumulates readings. It is not safe for concurrent use: one
// goroutine owns it.
type Batcher struct {
	opts     Options
	envelope int // bytes of the envelope around the readings, worst case
	pending  map[Stream]*pending
	order    []Stream // in first-seen order, for stable flushing
	now      func() time.Time
}

type pending struct {
	b      Batch
	oldest time.Time // when the first reading was added
}

const sentAtLen = len("2026-11-26T13:00:05.120Z")

// New returns a Batcher. now is the clock used for flush ages.
func New(opts Options, now func() time.Time) *Batcher {
	// The 128 KB limit holds with the largest envelope; max_bytes is the
	// user's target for the usual one.
	if opts.MaxBytes <= 0 || opts.MaxBytes > MaxPayload-droppedReserve {
		opts.MaxBytes = MaxPayload - droppedReserve
	}
	if opts.MaxReadings <= 0 {
		opts.MaxReadings = 1
	}
	env := len(`{"device":,"incarnation":"","volatile":true,"sent_at":"","readings":[]}`) + sentAtLen +
		len(reading.AppendString(nil, opts.Device)) + max(len(opts.Incarnation), incLen)
	return &Batcher{opts: opts, envelope: env, pending: map[Stream]*pending{}, now: now}
}

// Add adds the encoded reading r (seq seq) to stream st and returns the
// batches that became ready: a full batch flushed to make room, and a
// batch that reached max_readings or max_bytes.
func (b *Batcher) Add(st Stream, seq uint64, r []byte) []Batch {
	if b.opts.Single {
		return []Batch{{Stream: st, Seqs: []uint64{seq}, Ends: []int{len(r)}, Body: append([]byte(nil), r...)}}
	}
	p := b.pending[st]
	if p == nil {
		p = &pending{}
		b.pending[st] = p
		b.order = append(b.order, st)
	}
	var out []Batch
	if p.b.Count() > 0 && b.envelope+len(p.b.Body)+1+len(r) > b.opts.MaxBytes {
		out = append(out, b.flush(p))
	}
	if p.b.Count() > 0 {
		p.b.Body = append(p.b.Body, ',')
	} else {
		p.b.Stream = st
		p.oldest = b.now()
	}
	p.b.Body = append(p.b.Body, r...)
	p.b.Seqs = append(p.b.Seqs, seq)
	p.b.Ends = append(p.b.Ends, len(p.b.Body))
	// Full by count, or a lone reading that already fills the message.
	if p.b.Count() >= b.opts.MaxReadings || b.envelope+len(p.b.Body) >= b.opts.MaxBytes {
		out = append(out, b.flush(p))
	}
	return out
}

// Due returns the batches whose oldest reading has waited flush_interval.
func (b *Batcher) Due() []Batch {
	now := b.now()
	var out []Batch
	for _, t := range b.order {
		if p := b.pending[t]; p.b.Count() > 0 && now.Sub(p.oldest) >= b.opts.FlushInterval {
			out = append(out, b.flush(p))
		}
	}
	return out
}

// NextDue returns when the next batch will be due, and false if nothing is
// pending.
func (b *Batcher) NextDue() (time.Time, bool) {
	var next time.Time
	found := false
	for _, t := range b.order {
		if p := b.pending[t]; p.b.Count() > 0 {
			d := p.oldest.Add(b.opts.FlushInterval)
			if !found || d.Before(next) {
				next, found = d, true
			}
		}
	}
	return next, found
}

// Flush returns every pending batch.
func (b *Batcher) Flush() []Batch {
	var out []Batch
	for _, t := range b.order {
		if p := b.pending[t]; p.b.Count() > 0 {
			out = append(out, b.flush(p))
		}
	}
	return out
}

// Reset forgets everything pending (the readings are still in the spool).
func (b *Batcher) Reset() {
	clear(b.pending)
	b.order = b.order[:0]
}

// AppendSeqs appends the seqs of the readings pending.
func (b *Batcher) AppendSeqs(dst []uint64) []uint64 {
	for _, p := range b.pending {
		dst = append(dst, p.b.Seqs...)
	}
	return dst
}

// Len returns the number of readings pending.
func (b *Batcher) Len() int {
	n := 0
	for _, p := range b.pending {
		n += p.b.Count()
	}
	return n
}

func (b *Batcher) flush(p *pending) Batch {
	out := p.b
	p.b = Batch{}
	return out
}
