package spool_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// The same flows on the real filesystem (fdatasync, rename, directory
// fsync through os).
func TestOSFilesystem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	open := func() *spool.Spool {
		t.Helper()
		s, err := spool.Open(spool.Options{Dir: dir, SegmentBytes: 64 << 10, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	inc := s.Incarnation()
	for seq := uint64(1); seq <= 2000; seq += 4 {
		if err := s.Append(recs(seq, seq+1, seq+2, seq+3)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if s.SyncedSeq() != 2000 {
		t.Fatalf("SyncedSeq %d", s.SyncedSeq())
	}
	s.AckRange(1, 1000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open()
	if s.Incarnation() != inc {
		t.Fatalf("incarnation changed")
	}
	if got := pendingOf(t, s, 0, 0); !slices.Equal(got, seqRange(1001, 2000)) {
		t.Fatalf("pending %d records, %v...", len(got), got[:min(5, len(got))])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, e := range mustReadDir(t, dir) {
		if strings.HasPrefix(e.Name(), "seg-") {
			if info, _ := e.Info(); info.Mode().Perm() != 0o640 {
				t.Errorf("%s mode %v", e.Name(), info.Mode())
			}
		}
	}

	// Damage it like a power cut and a bad card would: half a record at
	// the end, a flipped byte in the middle, garbage beside it.
	segs := segNames(t, dir)
	last := filepath.Join(dir, segs[len(segs)-1])
	appendBytes(t, last, spool.AppendRecord(nil, 2001, payload(2001))[:30])
	flipByte(t, filepath.Join(dir, segs[len(segs)-1]), spool.SegHeaderSize+5) // the first record's length
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}

	rep, err := spool.Verify(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Segments[len(rep.Segments)-1].TailBytes != 30 || !slices.Contains(rep.Ignored, "notes.txt") {
		t.Fatalf("Verify %+v", rep)
	}
	var exported int
	if err := spool.Export(dir, nil, func(spool.Record) error { exported++; return nil }); err != nil || exported != 999 {
		t.Fatalf("Export: %d, %v", exported, err)
	}

	s = open()
	st := s.Stats()
	if st.TornTails != 1 || st.CorruptRegions != 1 || st.Pending != 999 {
		t.Fatalf("stats %+v", st)
	}
	first := segFirst(t, segs[len(segs)-1])
	if d := s.TakeDropped(); len(d) != 1 || d[0].First != first || d[0].Last != first {
		t.Fatalf("dropped %+v, want the record at %d", d, first)
	}
	if err := s.Append(recs(2001)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(b) != "keep me" {
		t.Fatalf("garbage file touched: %q %v", b, err)
	}
	st, err = spool.ReadStats(dir, nil)
	if err != nil || st.Pending != 1000 || st.TornTails != 0 || st.LastSeq != 2001 {
		t.Fatalf("ReadStats %+v %v", st, err)
	}
}

func TestOSOpenErrors(t *testing.T) {
	if _, err := spool.Open(spool.Options{}); err == nil {
		t.Fatal("Open with no Dir succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := spool.Open(spool.Options{Dir: filepath.Join(file, "spool")})
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("Open under a file: %v", err)
	}
	var pe *os.PathError
	if !errors.As(err, &pe) {
		t.Fatalf("not a PathError: %v", err)
	}
}

func mustReadDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func segNames(t *testing.T, dir string) []string {
	var out []string
	for _, e := range mustReadDir(t, dir) {
		if strings.HasPrefix(e.Name(), "seg-") && strings.HasSuffix(e.Name(), ".log") {
			out = append(out, e.Name())
		}
	}
	return out
}

func segFirst(t *testing.T, name string) uint64 {
	var v uint64
	for _, c := range name[4:20] {
		d := strings.IndexRune("0123456789abcdef", c)
		if d < 0 {
			t.Fatalf("bad name %s", name)
		}
		v = v<<4 | uint64(d)
	}
	return v
}

func appendBytes(t *testing.T, path string, b []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xFF
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
