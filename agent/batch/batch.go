// Package batch groups readings into messages, one stream per topic, and
// flushes a topic's message when it reaches max_readings, when one more
// reading would take it over max_bytes (envelope included, never over AWS
// IoT's 128 KB), or when its oldest reading has waited flush_interval.
package batch

import (
	"time"

	"github.com/sensor-agent/sensor-agent/agent/reading"
)

// MaxPayload is AWS IoT's publish payload limit.
const MaxPayload = 131072

// Batch is one message ready to publish.
type Batch struct {
	Topic    string
	FirstSeq uint64
	LastSeq  uint64
	Count    int
	Payload  []byte
}

// Options configures a Batcher.
type Options struct {
	Device        string
	MaxReadings   int
	MaxBytes      int
	FlushInterval time.Duration
	// Single sends one reading per message ({"device":...,"seq":...}).
	Single bool
}

// Batcher accumulates readings. It is not safe for concurrent use: one
// goroutine owns it (see Run).
type Batcher struct {
	opts    Options
	pending map[string]*pending
	order   []string // topics in first-seen order, for stable flushing
	now     func() time.Time
}

type pending struct {
	body    []byte // readings, comma separated, without the envelope
	count   int
	first   uint64
	last    uint64
	oldest  time.Time // when the first reading was added
	scratch []byte
}

// envelope: {"device":"<d>","sent_at":"<24 chars>","readings":[...]}
const sentAtLen = len("2026-11-26T13:00:05.120Z")

// New returns a Batcher. now is the clock used for sent_at and flush ages.
func New(opts Options, now func() time.Time) *Batcher {
	if opts.MaxBytes <= 0 || opts.MaxBytes > MaxPayload {
		opts.MaxBytes = MaxPayload
	}
	if opts.MaxReadings <= 0 {
		opts.MaxReadings = 1
	}
	return &Batcher{opts: opts, pending: map[string]*pending{}, now: now}
}

func (b *Batcher) envelopeLen() int {
	return len(`{"device":,"sent_at":"","readings":[]}`) + len(reading.AppendString(nil, b.opts.Device)) + sentAtLen
}

// Add adds r for topic and returns the batches that became ready (zero,
// one or two: a full batch flushed to make room, and a batch that reached
// max_readings).
func (b *Batcher) Add(topic string, r *reading.Reading) []Batch {
	if b.opts.Single {
		p := r.AppendJSONWithDevice(nil, b.opts.Device)
		return []Batch{{Topic: topic, FirstSeq: r.Seq, LastSeq: r.Seq, Count: 1, Payload: p}}
	}
	p := b.pending[topic]
	if p == nil {
		p = &pending{}
		b.pending[topic] = p
		b.order = append(b.order, topic)
	}
	p.scratch = r.AppendJSON(p.scratch[:0])
	var out []Batch
	if p.count > 0 && b.envelopeLen()+len(p.body)+1+len(p.scratch) > b.opts.MaxBytes {
		out = append(out, b.flush(topic, p))
	}
	if p.count > 0 {
		p.body = append(p.body, ',')
	} else {
		p.first = r.Seq
		p.oldest = b.now()
	}
	p.body = append(p.body, p.scratch...)
	p.count++
	p.last = r.Seq
	// Full by count, or a lone reading that already fills the message.
	if p.count >= b.opts.MaxReadings || b.envelopeLen()+len(p.body) >= b.opts.MaxBytes {
		out = append(out, b.flush(topic, p))
	}
	return out
}

// Due returns the batches whose oldest reading has waited flush_interval.
func (b *Batcher) Due() []Batch {
	now := b.now()
	var out []Batch
	for _, t := range b.order {
		if p := b.pending[t]; p.count > 0 && now.Sub(p.oldest) >= b.opts.FlushInterval {
			out = append(out, b.flush(t, p))
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
		if p := b.pending[t]; p.count > 0 {
			d := p.oldest.Add(b.opts.FlushInterval)
			if !found || d.Before(next) {
				next, found = d, true
			}
		}
	}
	return next, found
}

// Flush returns every pending batch (at shutdown).
func (b *Batcher) Flush() []Batch {
	var out []Batch
	for _, t := range b.order {
		if p := b.pending[t]; p.count > 0 {
			out = append(out, b.flush(t, p))
		}
	}
	return out
}

func (b *Batcher) flush(topic string, p *pending) Batch {
	out := make([]byte, 0, b.envelopeLen()+len(p.body))
	out = append(out, `{"device":`...)
	out = reading.AppendString(out, b.opts.Device)
	out = append(out, `,"sent_at":"`...)
	out = reading.AppendTime(out, b.now())
	out = append(out, `","readings":[`...)
	out = append(out, p.body...)
	out = append(out, "]}"...)
	bt := Batch{Topic: topic, FirstSeq: p.first, LastSeq: p.last, Count: p.count, Payload: out}
	p.body = p.body[:0]
	p.count = 0
	return bt
}
