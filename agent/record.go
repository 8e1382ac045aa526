package agent

import (
	"bytes"

	"github.com/sensor-agent/sensor-agent/agent/batch"
)

// A stored record's Data is the topic, optionally the incarnation its seq
// was numbered under, and the reading's JSON:
//
//	topic "\n" json                            the spool's own incarnation
//	topic "\x00" incarnation ["!"] "\n" json   another one; "!" = volatile
//
// Most records carry no tag: they were numbered under the incarnation of
// the spool they are in. A record numbered while the disk could not be
// written carries the agent's volatile incarnation (its seq may be handed
// out again by a later run under the spool's), and a record carried over
// from a deleted spool keeps that spool's. Topics never contain NUL (see
// publisher.ValidateTopic), and the tag keeps its meaning wherever the
// record moves (memory, the spool, a new spool), so a reading is always
// published under the (incarnation, seq) it was first given.

// Head is what a record says besides the reading.
type Head = batch.Stream

// appendRecord encodes a record's Data.
func appendRecord(dst []byte, h Head, js []byte) []byte {
	return append(appendHead(dst, h), js...)
}

// appendHead encodes what precedes the reading's JSON.
func appendHead(dst []byte, h Head) []byte {
	dst = append(dst, h.Topic...)
	if h.Incarnation != "" {
		dst = append(dst, 0)
		dst = append(dst, h.Incarnation...)
		if h.Volatile {
			dst = append(dst, '!')
		}
	}
	return append(dst, '\n')
}

// SplitRecord returns a record's head and reading JSON. Head.Incarnation is
// "" for a record of the spool's own incarnation.
func SplitRecord(data []byte) (h Head, js []byte, ok bool) {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		return Head{}, nil, false
	}
	head := data[:i]
	if j := bytes.IndexByte(head, 0); j >= 0 {
		tag := head[j+1:]
		head = head[:j]
		if n := len(tag); n > 0 && tag[n-1] == '!' {
			h.Volatile, tag = true, tag[:n-1]
		}
		h.Incarnation = string(tag)
	}
	h.Topic = string(head)
	return h, data[i+1:], true
}

// tagged returns data with its incarnation made explicit: inc when it has
// none (the record leaves the spool it was numbered for).
func tagged(data []byte, inc string, volatile bool) []byte {
	h, js, ok := SplitRecord(data)
	if !ok || h.Incarnation != "" || inc == "" {
		return data
	}
	h.Incarnation, h.Volatile = inc, volatile
	return appendRecord(make([]byte, 0, len(data)+len(inc)+2), h, js)
}

// recordIncarnation is the spool's Tag: the incarnation a record carries,
// "" for the spool's own.
func recordIncarnation(data []byte) string {
	h, _, _ := SplitRecord(data)
	return h.Incarnation
}
