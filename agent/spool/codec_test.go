package spool_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, data := range [][]byte{nil, {}, []byte("x"), payload(1041), bytes.Repeat([]byte{0xF0, 0x5C, 0xA1, 0x1E}, 100)} {
		b := spool.AppendRecord([]byte("prefix"), 1041, data)
		seq, got, n, err := spool.DecodeRecord(b[len("prefix"):])
		if err != nil || seq != 1041 || !bytes.Equal(got, data) || n != len(b)-len("prefix") {
			t.Fatalf("decode(%q) = %d %q %d %v", data, seq, got, n, err)
		}
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	rec := spool.AppendRecord(nil, 7, []byte("hello"))
	flip := func(i int) []byte {
		b := bytes.Clone(rec)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, spool.ErrTruncated},
		{"magic prefix", rec[:2], spool.ErrTruncated},
		{"header only", rec[:spool.RecordHeaderSize], spool.ErrTruncated},
		{"one byte short", rec[:len(rec)-1], spool.ErrTruncated},
		{"bad magic", flip(1), spool.ErrCorrupt},
		{"bad magic prefix", flip(0)[:2], spool.ErrCorrupt},
		{"length", flip(4), spool.ErrCorrupt}, // now claims 4 bytes: a CRC mismatch
		{"length over the limit", func() []byte { b := bytes.Clone(rec); b[7] = 0x7F; return b }(), spool.ErrCorrupt},
		{"seq", flip(10), spool.ErrCorrupt},
		{"crc", flip(18), spool.ErrCorrupt},
		{"payload", flip(22), spool.ErrCorrupt},
	}
	for _, tt := range tests {
		if _, _, _, err := spool.DecodeRecord(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// FuzzDecodeRecord: DecodeRecord never panics, accepts only what
// AppendRecord produces, and every encoding decodes back, while every
// prefix of it is "truncated" and every single-byte change is rejected.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(spool.AppendRecord(nil, 1, payload(1)), uint64(1))
	f.Add([]byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, seq uint64) {
		s, data, n, err := spool.DecodeRecord(b)
		if err == nil {
			if n < spool.RecordHeaderSize || n > len(b) || !bytes.Equal(spool.AppendRecord(nil, s, data), b[:n]) {
				t.Fatalf("accepted %q as (%d, %q, %d)", b, s, data, n)
			}
		} else if !errors.Is(err, spool.ErrTruncated) && !errors.Is(err, spool.ErrCorrupt) {
			t.Fatalf("unexpected error %v", err)
		}
		if len(b) > spool.MaxRecordSize {
			return
		}
		enc := spool.AppendRecord(nil, seq, b)
		s, data, n, err = spool.DecodeRecord(append(bytes.Clone(enc), "trailing"...))
		if err != nil || s != seq || !bytes.Equal(data, b) || n != len(enc) {
			t.Fatalf("round trip of (%d, %q): %d %q %d %v", seq, b, s, data, n, err)
		}
		for _, k := range []int{0, 1, spool.RecordHeaderSize - 1, spool.RecordHeaderSize, len(enc) - 1} {
			if k < 0 || k >= len(enc) {
				continue
			}
			if _, _, _, err := spool.DecodeRecord(enc[:k]); !errors.Is(err, spool.ErrTruncated) {
				t.Fatalf("prefix %d of %d: %v", k, len(enc), err)
			}
		}
		i := int(seq % uint64(len(enc)))
		enc[i] ^= byte(seq>>8) | 1
		if _, _, _, err := spool.DecodeRecord(enc); err == nil {
			t.Fatalf("byte %d changed, still decodes", i)
		}
	})
}
