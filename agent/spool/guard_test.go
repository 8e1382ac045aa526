package spool_test

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/sensor-agent/sensor-agent/agent/spool"
	"github.com/sensor-agent/sensor-agent/agent/spool/spooltest"
)

// A process crash loses no acknowledgement: cursor.live has them, without
// an fsync. A power cut may lose cursor.live; then the fsynced cursor
// applies and records come again (duplicates, not loss).
func TestLiveCursor(t *testing.T) {
	for _, tc := range []struct {
		how  string
		want []uint64
	}{
		{"crash", []uint64{1, 4, 6, 7, 8}},
		{"power", seqRange(1, 8)},
	} {
		t.Run(tc.how, func(t *testing.T) {
			e := newEnv(t, tiny)
			e.append(seqRange(1, 8)...)
			e.sync()
			e.s.Ack(2, 3, 5) // no Sync after: only cursor.live knows
			e.reopen(tc.how)
			e.wantPending(tc.want)
			if st := e.s.Stats(); st.CursorErrors != 0 {
				t.Fatalf("CursorErrors = %d", st.CursorErrors)
			}
		})
	}
	t.Run("torn live cursor", func(t *testing.T) {
		e := newEnv(t, tiny)
		e.append(seqRange(1, 8)...)
		e.s.Ack(1)
		e.sync() // the fsynced cursor says 1
		e.s.Ack(2, 3, 5)
		b, _ := e.fs.ReadFile(e.path("cursor.live"))
		e.fs.Crash()
		e.fs.WriteFile(e.path("cursor.live"), b[:len(b)-3])
		e.open()
		e.wantPending([]uint64{2, 3, 4, 5, 6, 7, 8})
	})
}

// Two processes on one spool would hand out the same numbers: the second
// Open fails and names the holder; read-only access still works.
func TestLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	a, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Append([]spool.Record{{Seq: 1, Data: payload(1)}}); err != nil {
		t.Fatal(err)
	}
	_, err = spool.Open(spool.Options{Dir: dir})
	if !errors.Is(err, spool.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	// flock is per open file description, so this process counts as
	// "another" to itself: the message names our PID.
	if want := "(pid " + strconv.Itoa(os.Getpid()) + ")"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the holder %s", err, want)
	}
	if st, err := spool.ReadStats(dir, nil); err != nil || st.Pending != 1 {
		t.Fatalf("ReadStats while locked: %+v %v", st, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	b.Close()
}

// A spool that filled its own disk must get it back: the cursor that
// allows deleting delivered segments is written with the reserved space.
func TestReserveFreesAFullDisk(t *testing.T) {
	e := newEnv(t, tiny)
	if !slices.Contains(e.fs.Files(e.dir), "reserve") {
		t.Fatalf("no reserve file: %v", e.fs.Files(e.dir))
	}
	e.append(seqRange(1, 40)...)
	e.sync()
	before := len(e.segFiles())
	// The disk is full: every new file fails, until something is freed.
	e.fs.Inject(spooltest.Fault{Op: spooltest.OpOpen, Match: "cursor.tmp", Err: syscall.ENOSPC})
	e.s.AckRange(1, 30)
	e.sync()
	if after := len(e.segFiles()); after >= before {
		t.Fatalf("segments %d -> %d: delivered segments not deleted on a full disk", before, after)
	}
	if !strings.Contains(e.logs.String(), "used the reserved space") {
		t.Fatalf("not logged:\n%s", e.logs)
	}
	// Space came back: the reserve is taken again.
	if !slices.Contains(e.fs.Files(e.dir), "reserve") {
		t.Fatalf("reserve not re-created: %v", e.fs.Files(e.dir))
	}
	e.reopen("power")
	e.wantPending(seqRange(31, 40))
}

// spaceFS reports a settable amount of free space.
type spaceFS struct {
	*spooltest.FaultFS
	avail *int64
}

func (f spaceFS) Available(string) (int64, error) { return *f.avail, nil }

// spool.max_bytes larger than the filesystem is noticed at Open and
// lowered, so the spool drops its oldest segment (reported) instead of
// filling the disk.
func TestFitToDisk(t *testing.T) {
	for _, tc := range []struct {
		name  string
		avail int64
		want  int64 // 0: unchanged
	}{
		{"room enough", 1 << 30, 0},
		{"2 MiB free", 2 << 20, 2<<20 - 256<<10},
		{"almost nothing free", 10 << 10, 2 * 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			avail := tc.avail
			s, err := spool.Open(spool.Options{Dir: "/s", FS: spaceFS{spooltest.NewFaultFS(), &avail},
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := s.Stats().MaxBytes
			switch {
			case tc.want == 0 && got != 64<<20:
				t.Fatalf("MaxBytes %d, want the default", got)
			case tc.want != 0 && got != tc.want:
				t.Fatalf("MaxBytes %d, want %d", got, tc.want)
			case tc.want != 0 && !strings.Contains(logs.String(), "more than the filesystem can hold"):
				t.Fatalf("not logged:\n%s", logs.String())
			}
		})
	}
}

// A disk full only for a while does not keep the spool small: when the
// lowered limit is reached, free space is looked at again.
func TestFitToDiskRoomComesBack(t *testing.T) {
	avail := int64(10 << 10)
	s, err := spool.Open(spool.WithMinSegment(spool.Options{Dir: "/s", FS: spaceFS{spooltest.NewFaultFS(), &avail},
		MaxBytes: 1 << 20, SegmentBytes: 64 << 10}, 1024))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	low := s.Stats().MaxBytes
	if low >= 1<<20 {
		t.Fatalf("MaxBytes %d: not lowered", low)
	}
	avail = 100 << 20 // the other files went away
	for seq := uint64(1); s.Stats().Bytes < 2*low; seq++ {
		if err := s.Append([]spool.Record{{Seq: seq, Data: payload(seq)}}); err != nil {
			t.Fatal(err)
		}
		if seq > 1e5 {
			t.Fatal("spool never grew past the lowered limit")
		}
	}
	if got := s.Stats(); got.MaxBytes != 1<<20 || got.DroppedRecords != 0 {
		t.Fatalf("after room came back: MaxBytes %d, dropped %d", got.MaxBytes, got.DroppedRecords)
	}
}

// The spool directory deleted while in use (rm -rf): noticed at the next
// Sync, and every unacknowledged record is read back from the files still
// open, including what was appended after the deletion.
func TestGoneAndSalvage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		segSize int64
		delete  func(t *testing.T, dir string)
	}{
		{"one segment, never read", 1 << 20, func(t *testing.T, dir string) { os.RemoveAll(dir) }},
		{"rm -rf", 0, func(t *testing.T, dir string) { os.RemoveAll(dir) }},
		{"rm -rf then mkdir", 0, func(t *testing.T, dir string) {
			os.RemoveAll(dir)
			os.Mkdir(dir, 0o750)
		}},
		{"rm dir/*", 0, func(t *testing.T, dir string) {
			files, _ := filepath.Glob(filepath.Join(dir, "*"))
			for _, f := range files {
				os.Remove(f)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			seg := tc.segSize
			if seg == 0 {
				seg = 1024
			}
			o := spool.WithMinSegment(spool.Options{Dir: dir, SegmentBytes: seg, MaxBytes: 64 << 20}, 256)
			s, err := spool.Open(o)
			if err != nil {
				t.Fatal(err)
			}
			for seq := uint64(1); seq <= 60; seq++ {
				if err := s.Append([]spool.Record{{Seq: seq, Data: payload(seq)}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			s.Ack(seqRange(1, 10)...)
			s.Ack(20)
			tc.delete(t, dir)
			// Appended after the deletion: into the open segment (kept),
			// or refused when a new segment had to be created.
			last := uint64(61)
			if err := s.Append([]spool.Record{{Seq: 61, Data: payload(61)}}); errors.Is(err, spool.ErrGone) {
				last = 60
			} else if err != nil {
				t.Fatalf("Append after the deletion: %v", err)
			}
			err = s.Sync()
			if !errors.Is(err, spool.ErrGone) {
				t.Fatalf("Sync after deletion: %v, want ErrGone", err)
			}
			if err := s.Append([]spool.Record{{Seq: 62, Data: payload(62)}}); !errors.Is(err, spool.ErrGone) {
				t.Fatalf("Append once gone: %v", err)
			}
			var got []uint64
			lost, err := s.Salvage(func(r spool.Record) error {
				if string(r.Data) != string(payload(r.Seq)) {
					t.Fatalf("salvaged %d: %q", r.Seq, r.Data)
				}
				got = append(got, r.Seq)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := slices.DeleteFunc(seqRange(11, last), func(x uint64) bool { return x == 20 })
			if !slices.Equal(got, want) || len(lost) != 0 {
				t.Fatalf("salvaged %v, lost %+v; want %v", got, lost, want)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close after Salvage: %v", err)
			}
		})
	}
}

// Salvage hands over pending loss reports with the old incarnation, and
// AddDropped keeps them (persisted) in a new spool.
func TestSalvageCarriesReports(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := spool.Open(tiny(spool.Options{Dir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 60; seq++ { // fills the 4 KiB spool: the oldest dropped
		if err := s.Append([]spool.Record{{Seq: seq, Data: payload(seq)}}); err != nil {
			t.Fatal(err)
		}
	}
	old := s.Incarnation()
	os.RemoveAll(dir)
	if err := s.Sync(); !errors.Is(err, spool.ErrGone) {
		t.Fatalf("Sync after the directory was deleted: %v", err)
	}
	lost, err := s.Salvage(func(spool.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) == 0 || lost[0].Reason != spool.DropFull || lost[0].Incarnation != old {
		t.Fatalf("lost %+v", lost)
	}
	fresh := newEnv(t, tiny)
	if err := fresh.s.AddDropped(lost...); err != nil {
		t.Fatal(err)
	}
	fresh.reopen("power")
	if got := fresh.s.TakeDropped(); !slices.Equal(got, lost) {
		t.Fatalf("after a power cut: %+v, want %+v", got, lost)
	}
}

// Only the meta file deleted: written again, the spool goes on.
func TestMetaDeletedIsRewritten(t *testing.T) {
	e := newEnv(t, tiny)
	e.append(seqRange(1, 5)...)
	inc := e.s.Incarnation()
	e.fs.Remove(e.path("meta"))
	e.sync()
	e.reopen("power")
	if e.s.Incarnation() != inc {
		t.Fatalf("incarnation %s, want %s", e.s.Incarnation(), inc)
	}
	e.wantPending(seqRange(1, 5))
}

var _ io.Closer = (*spool.Lock)(nil)

// A record in a message in flight when its segment was dropped for space
// is delivered after all: the report must not name it, now or after a
// restart. A report published in part is kept for the rest.
func TestDropReportsNeverNameDelivered(t *testing.T) {
	e := newEnv(t, tiny)
	e.append(seqRange(1, 80)...) // the 4 KiB spool drops its oldest segments
	got := e.s.TakeDropped()
	if len(got) == 0 || got[0].First != 1 || got[0].Last < 10 {
		t.Fatalf("reports %+v", got)
	}
	e.s.Ack(3) // was in flight, then delivered
	e.s.AckDropped(spool.DroppedRange{First: 1, Last: 2, Count: 2, Reason: spool.DropFull})
	e.reopen("crash")
	for _, d := range e.s.TakeDropped() {
		if d.First <= 3 && 3 <= d.Last || d.First <= 2 {
			t.Fatalf("after the ack, a report still names 1..3: %+v", d)
		}
		if d.Count > d.Last-d.First+1 {
			t.Fatalf("count above the span: %+v", d)
		}
	}
}
