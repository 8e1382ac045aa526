package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// rangeSet against a plain set of seqs.
func TestRangeSetModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var s rangeSet
		model := map[uint64]bool{0: true} // seq 0 is never appended: always "acknowledged"
		const top = 120
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			if rapid.IntRange(0, 5).Draw(t, "op") == 0 {
				w := rapid.Uint64Range(0, top).Draw(t, "w")
				s.advance(w)
				for x := uint64(0); x <= w; x++ {
					model[x] = true
				}
			} else {
				lo := rapid.Uint64Range(0, top).Draw(t, "lo")
				hi := rapid.Uint64Range(lo, min(lo+10, top)).Draw(t, "hi")
				changed := s.add(lo, hi)
				want := false
				for x := lo; x <= hi; x++ {
					want = want || !model[x]
					model[x] = true
				}
				if changed != want {
					t.Fatalf("add(%d, %d) changed = %v, want %v", lo, hi, changed, want)
				}
			}
			// Invariants.
			for i, r := range s.r {
				if r.lo > r.hi || r.lo <= s.w+1 || i > 0 && r.lo <= s.r[i-1].hi+1 {
					t.Fatalf("bad set w=%d %v", s.w, s.r)
				}
			}
			for x := uint64(0); x <= top+2; x++ {
				if s.contains(x) != model[x] {
					t.Fatalf("contains(%d) = %v; w=%d %v", x, s.contains(x), s.w, s.r)
				}
				y := x
				for model[y] {
					y++
				}
				if got := s.nextUncovered(x); got != y {
					t.Fatalf("nextUncovered(%d) = %d, want %d", x, got, y)
				}
				for hi := x; hi <= x+7; hi++ {
					var n uint64
					for z := x; z <= hi; z++ {
						if model[z] {
							n++
						}
					}
					if got := s.countIn(x, hi); got != n {
						t.Fatalf("countIn(%d, %d) = %d, want %d", x, hi, got, n)
					}
					if s.covers(x, hi) != (n == hi-x+1) {
						t.Fatalf("covers(%d, %d)", x, hi)
					}
				}
			}
		}
	})
}

func TestCursorCodec(t *testing.T) {
	inc := [16]byte{1, 2, 3}
	var c cursorState
	c.gen = 77
	c.acks.advance(10)
	for i := uint64(0); i < 100; i++ {
		c.acks.add(20+3*i, 20+3*i)
	}
	c.lastSeq, c.syncedSeq = 400, 390
	taken := 0
	const other = "00112233445566778899aabbccddeeff"
	for i := range 70 {
		d := DroppedRange{First: uint64(1000 + 10*i), Last: uint64(1005 + 10*i), Count: 6, Reason: DropFull}
		if i == 0 {
			d.Incarnation = other
		}
		taken = c.addDropped(d, taken)
		if i == 1 {
			taken = 2 // both returned by TakeDropped
		}
	}
	// The first report is another incarnation's: merges skip it, so no
	// report mixes incarnations.
	if len(c.dropped) != maxDropped || c.dropped[0].Incarnation != other || c.dropped[0].Count != 6 ||
		c.dropped[1].First != 1010 || c.dropped[1].Count != 6*7 || c.dropped[1].Last != 1075 {
		t.Fatalf("merged reports: %d, first %+v %+v", len(c.dropped), c.dropped[0], c.dropped[1])
	}
	if taken != 1 {
		t.Fatalf("taken = %d: a merge with untaken reports must be reported again", taken)
	}
	b := encodeCursor(nil, inc, &c)
	got, err := decodeCursor(b, inc)
	if err != nil {
		t.Fatal(err)
	}
	if got.gen != 77 || got.acks.w != 10 || len(got.acks.r) != 100 || got.acks.r[99] != (seqRange{20 + 3*99, 20 + 3*99}) ||
		got.lastSeq != 400 || got.syncedSeq != 390 || !slices.Equal(got.dropped, c.dropped) {
		t.Fatalf("decoded %+v", got)
	}
	if _, err := decodeCursor(b, [16]byte{9}); !errors.Is(err, errCursorIncarnation) {
		t.Fatalf("other incarnation: %v", err)
	}
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 0x10
		if _, err := decodeCursor(bad, inc); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	for n := range b {
		if _, err := decodeCursor(b[:n], inc); err == nil {
			t.Fatalf("%d-byte prefix accepted", n)
		}
	}

	// The live file: framed, so a shorter cursor written over a longer
	// one reads back without the stale tail; a torn one is refused.
	long := encodeLive(nil, inc, &c)
	short := cursorState{gen: 78}
	short.acks.advance(500)
	over := append(encodeLive(nil, inc, &short), long[len(encodeLive(nil, inc, &short)):]...)
	if got, err := decodeLive(over, inc); err != nil || got.gen != 78 || got.acks.w != 500 {
		t.Fatalf("live cursor over a longer one: %+v %v", got, err)
	}
	if _, err := decodeLive(long[:len(long)-1], inc); err == nil {
		t.Fatal("torn live cursor accepted")
	}
}

// TestCursorCodecLimit: up to maxCursorRanges ranges are kept (a clean stop
// after an outage must not forget acknowledgements), the lowest ones.
func TestCursorCodecLimit(t *testing.T) {
	inc := [16]byte{4}
	var c cursorState
	for i := uint64(0); i < maxCursorRanges+50; i++ {
		c.acks.add(20+3*i, 20+3*i)
	}
	got, err := decodeCursor(encodeCursor(nil, inc, &c), inc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.acks.r) != maxCursorRanges || got.acks.r[maxCursorRanges-1] != c.acks.r[maxCursorRanges-1] {
		t.Fatalf("%d ranges kept, last %+v", len(got.acks.r), got.acks.r[len(got.acks.r)-1])
	}
}

// TestCursorV1 reads a cursor written by the previous format (no
// generation, 32-byte drop reports without an incarnation).
func TestCursorV1(t *testing.T) {
	inc := [16]byte{7}
	var b []byte
	b = append(b, "SPCU"...)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = append(b, inc[:]...)
	for _, v := range []uint64{10, 400, 390} { // watermark, last, synced
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.LittleEndian.AppendUint32(b, 1) // ranges
	b = binary.LittleEndian.AppendUint32(b, 1) // drop reports
	b = binary.LittleEndian.AppendUint64(b, 20)
	b = binary.LittleEndian.AppendUint64(b, 25)
	for _, v := range []uint64{100, 110, 11} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = append(b, byte(DropFull), 0, 0, 0, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	got, err := decodeCursor(b, inc)
	if err != nil {
		t.Fatal(err)
	}
	want := []DroppedRange{{First: 100, Last: 110, Count: 11, Reason: DropFull}}
	if got.gen != 0 || got.acks.w != 10 || len(got.acks.r) != 1 || got.acks.r[0] != (seqRange{20, 25}) ||
		got.lastSeq != 400 || got.syncedSeq != 390 || !slices.Equal(got.dropped, want) {
		t.Fatalf("decoded %+v", got)
	}
}

func TestMetaCodec(t *testing.T) {
	inc := [16]byte{0xde, 0xad, 0xbe, 0xef}
	b := encodeMeta(inc)
	if got, err := decodeMeta(b); err != nil || got != inc {
		t.Fatalf("%v %v", got, err)
	}
	for i := range len(b) - 1 {
		bad := bytes.Clone(b)
		bad[i] ^= 0x01
		if _, err := decodeMeta(bad); err == nil {
			t.Fatalf("byte %d flipped: accepted %q", i, bad)
		}
	}
	if DropFull.String() != "spool full" || DropReason(9).String() != "reason(9)" {
		t.Fatal("DropReason.String")
	}
}
