package spool_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/spool"
	"github.com/sensor-agent/sensor-agent/agent/spool/spooltest"
)

func TestAppendValidates(t *testing.T) {
	tests := []struct {
		name string
		recs []spool.Record
		want error
	}{
		{"repeated seq", recs(5, 5), spool.ErrSeq},
		{"decreasing seq", recs(6, 4), spool.ErrSeq},
		{"seq at LastSeq", recs(3), spool.ErrSeq},
		{"seq zero", []spool.Record{{Seq: 0}}, spool.ErrSeq},
		{"MaxUint64 is reserved", []spool.Record{{Seq: math.MaxUint64}}, spool.ErrSeq},
		{"record over a segment", []spool.Record{{Seq: 10, Data: make([]byte, 1024)}}, spool.ErrTooLarge},
		{"group over a segment", func() []spool.Record {
			var rs []spool.Record
			for i := range 20 {
				rs = append(rs, spool.Record{Seq: uint64(10 + i), Data: make([]byte, 60)})
			}
			return rs
		}(), spool.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tiny)
			e.append(1, 2, 3)
			if err := e.s.Append(tt.recs); !errors.Is(err, tt.want) {
				t.Fatalf("Append = %v, want %v", err, tt.want)
			}
			// A rejected group leaves nothing behind.
			e.wantPending([]uint64{1, 2, 3})
			if got := e.s.LastSeq(); got != 3 {
				t.Fatalf("LastSeq = %d, want 3", got)
			}
		})
	}
}

// Guarantees 1 and 2: a crash of the process keeps every appended record,
// a power cut keeps every synced one.
func TestCrashAndPowerCut(t *testing.T) {
	tests := []struct {
		name     string
		syncThen []uint64 // appended then synced
		unsynced []uint64 // appended after the last sync
		how      string
		want     []uint64
	}{
		{"crash keeps unsynced", seqRange(1, 5), seqRange(6, 30), "crash", seqRange(1, 30)},
		{"crash with nothing synced", nil, seqRange(1, 30), "crash", seqRange(1, 30)},
		{"power cut keeps synced", seqRange(1, 25), seqRange(26, 30), "power", seqRange(1, 25)},
		{"power cut with nothing synced", nil, seqRange(1, 10), "power", nil},
		// 12 records fill a tiny segment; sealing it syncs it.
		{"power cut keeps sealed segments", nil, seqRange(1, 30), "power", seqRange(1, 24)},
		{"power cut after full sync", seqRange(1, 30), nil, "power", seqRange(1, 30)},
		{"clean close", seqRange(1, 10), seqRange(11, 30), "close", seqRange(1, 30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tiny)
			for _, s := range tt.syncThen {
				e.append(s)
			}
			e.sync()
			if len(tt.syncThen) > 0 && e.s.SyncedSeq() != tt.syncThen[len(tt.syncThen)-1] {
				t.Fatalf("SyncedSeq = %d after syncing %v", e.s.SyncedSeq(), tt.syncThen)
			}
			for _, s := range tt.unsynced {
				e.append(s)
			}
			e.reopen(tt.how)
			e.wantPending(tt.want)
			if tt.want != nil && e.s.LastSeq() != tt.want[len(tt.want)-1] {
				t.Fatalf("LastSeq = %d", e.s.LastSeq())
			}
			// And it goes on: the next seqs append and survive.
			next := e.s.LastSeq() + 1
			e.append(next)
			e.reopen("close")
			e.wantPending(append(slices.Clone(tt.want), next))
		})
	}
}

// Guarantee 3: a write torn by a power cut is cut off at the next Open.
func TestTornTail(t *testing.T) {
	r6 := int64(spool.RecordHeaderSize + len(payload(6)))
	tests := []struct {
		name string
		keep int64
		want []uint64
		torn int64
	}{
		{"nothing of the write", 0, seqRange(1, 5), 0},
		{"inside the magic", 2, seqRange(1, 5), 1},
		{"inside the header", 15, seqRange(1, 5), 1},
		{"header only", spool.RecordHeaderSize, seqRange(1, 5), 1},
		{"one byte short", r6 - 1, seqRange(1, 5), 1},
		{"first record whole", r6, seqRange(1, 6), 0},
		{"into the second", r6 + 7, seqRange(1, 6), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tiny)
			e.append(1, 2, 3)
			e.append(4, 5)
			e.sync()
			e.append(6, 7)
			e.fs.TearLastWrite(int(tt.keep))
			e.reopen("power")
			e.wantPending(tt.want)
			if st := e.s.Stats(); st.TornTails != tt.torn || st.CorruptRegions != 0 {
				t.Fatalf("TornTails = %d, CorruptRegions = %d; want %d, 0", st.TornTails, st.CorruptRegions, tt.torn)
			}
			// The tail is gone from the file, so the next records follow
			// the last valid one and survive a second recovery.
			e.append(8, 9)
			e.sync()
			e.reopen("power")
			e.wantPending(append(slices.Clone(tt.want), 8, 9))
			if st := e.s.Stats(); st.TornTails != 0 || st.CorruptRegions != 0 {
				t.Fatalf("second recovery found damage: %+v", st)
			}
		})
	}
}

// A segment torn while being created (its header incomplete) is removed.
func TestTornNewSegment(t *testing.T) {
	for _, keep := range []int{0, 1, spool.SegHeaderSize - 1, spool.SegHeaderSize, spool.SegHeaderSize + 3} {
		e := newEnv(t, tiny)
		n := len(e.segFiles())
		s := uint64(1)
		for ; len(e.segFiles()) < 2; s++ {
			e.append(s)
		}
		e.fs.TearLastWrite(keep)
		e.reopen("power")
		e.wantPending(seqRange(1, s-2))
		if st := e.s.Stats(); st.TornTails != 1 || st.BadSegments != 0 || st.BadHeaders != 0 {
			t.Fatalf("keep %d: stats %+v", keep, st)
		}
		if got := len(e.segFiles()); got != n+1 {
			t.Fatalf("keep %d: %d segment files, want %d", keep, got, n+1)
		}
	}
}

// Guarantee 3: a corrupt record is skipped, the others are kept, the
// damage is counted, logged and reported once as a dropped range.
func TestCorruptRecordSkipped(t *testing.T) {
	hdr := int64(spool.SegHeaderSize)
	r := int64(spool.RecordHeaderSize + len(payload(1))) // every test payload has the same length for 1..9
	tests := []struct {
		name string
		off  int64 // within record 3
	}{
		{"magic", 0},
		{"length", 5},
		{"seq", 9},
		{"crc", 17},
		{"payload", 30},
		{"last payload byte", r - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tiny)
			e.append(1, 2, 3, 4, 5)
			e.sync()
			e.fs.CorruptByte(e.path(spool.SegName(1)), hdr+2*r+tt.off)
			// The running spool skips it too, without an error.
			e.wantPending([]uint64{1, 2, 4, 5})
			e.reopen("crash")
			e.wantPending([]uint64{1, 2, 4, 5})
			st := e.s.Stats()
			if st.CorruptRegions != 1 || st.CorruptBytes != r || st.TornTails != 0 {
				t.Fatalf("stats: %+v", st)
			}
			want := []spool.DroppedRange{{First: 3, Last: 3, Count: 1, Reason: spool.DropCorrupt, Incarnation: e.s.Incarnation()}}
			got := e.s.TakeDropped()
			if !slices.Equal(got, want) {
				t.Fatalf("TakeDropped = %+v, want %+v", got, want)
			}
			if !strings.Contains(e.logs.String(), "corrupt region") {
				t.Fatalf("not logged:\n%s", e.logs)
			}
			// Reported once: another recovery finds the region again but
			// knows it was reported.
			e.reopen("close")
			if got := e.s.TakeDropped(); !slices.Equal(got, want) {
				t.Fatalf("unacknowledged report after reopen = %+v, want %+v", got, want)
			}
			e.s.AckDropped(want...)
			e.reopen("close")
			if got := e.s.TakeDropped(); len(got) != 0 {
				t.Fatalf("report came back: %+v", got)
			}
			e.wantPending([]uint64{1, 2, 4, 5})
		})
	}
}

// A corrupt region in the middle of a full (sealed) segment, with more
// segments after it.
func TestCorruptInSealedSegment(t *testing.T) {
	e := newEnv(t, tiny)
	for s := uint64(1); s <= 40; s++ {
		e.append(s)
	}
	e.sync()
	segs := e.segFiles()
	if len(segs) < 3 {
		t.Fatalf("want several segments, have %v", segs)
	}
	// Corrupt the last record of the first segment: the region runs to
	// the end of the segment.
	data, _ := e.fs.ReadFile(e.path(segs[0]))
	e.fs.CorruptByte(e.path(segs[0]), int64(len(data)-3))
	e.reopen("close")
	got := e.pending()
	if len(got) != 39 || slices.Contains(got, 13) && slices.Contains(got, 12) && slices.Contains(got, 14) {
		// 12 records of ~65 bytes fit in a 1 KiB segment: the 12th is the last one of seg 1.
		t.Logf("pending %v", got)
	}
	d := e.s.TakeDropped()
	if len(d) != 1 || d[0].Reason != spool.DropCorrupt || d[0].Count != 1 || slices.Contains(got, d[0].First) {
		t.Fatalf("TakeDropped = %+v; pending %v", d, got)
	}
	if len(got) != 39 {
		t.Fatalf("pending %v: want 39 records", got)
	}
}

// Guarantee 3: an unreadable cursor means duplicates, not loss.
func TestCorruptCursor(t *testing.T) {
	tests := []struct {
		name   string
		damage func(e *env)
	}{
		{"flipped byte", func(e *env) { e.fs.CorruptByte(e.path("cursor"), 30) }},
		{"truncated", func(e *env) {
			b, _ := e.fs.ReadFile(e.path("cursor"))
			e.fs.WriteFile(e.path("cursor"), b[:20])
		}},
		{"empty", func(e *env) { e.fs.WriteFile(e.path("cursor"), nil) }},
		{"garbage", func(e *env) { e.fs.WriteFile(e.path("cursor"), []byte("{not a cursor}\n")) }},
		{"other incarnation", func(e *env) {
			other := newEnv(e.t, tiny)
			other.append(1)
			other.s.Ack(1)
			other.reopen("close")
			b, _ := other.fs.ReadFile(other.path("cursor"))
			e.fs.WriteFile(e.path("cursor"), b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tiny)
			e.append(seqRange(1, 8)...)
			e.s.Ack(2, 3, 5)
			e.reopen("close")
			e.wantPending([]uint64{1, 4, 6, 7, 8})
			tt.damage(e)
			e.fs.Remove(e.path("cursor.live")) // both copies lost
			e.reopen("crash")
			e.wantPending(seqRange(1, 8)) // acknowledgements lost: sent again
			if st := e.s.Stats(); st.CursorErrors != 1 {
				t.Fatalf("CursorErrors = %d", st.CursorErrors)
			}
			if !strings.Contains(e.logs.String(), "cursor unreadable") {
				t.Fatalf("not logged:\n%s", e.logs)
			}
			// A fresh cursor was written: the next Open is clean.
			e.s.Ack(1)
			e.reopen("close")
			e.wantPending(seqRange(2, 8))
			if st := e.s.Stats(); st.CursorErrors != 0 {
				t.Fatalf("CursorErrors after rewrite = %d", st.CursorErrors)
			}
		})
	}
}

// Guarantee 3: segment headers. A damaged header costs nothing (the
// records carry their own CRCs); a foreign or empty file is set aside.
func TestBadSegmentHeader(t *testing.T) {
	t.Run("damaged header, records salvaged", func(t *testing.T) {
		e := newEnv(t, tiny)
		e.append(seqRange(1, 30)...)
		e.sync()
		segs := e.segFiles()
		e.fs.CorruptByte(e.path(segs[0]), 10)
		e.reopen("close")
		e.wantPending(seqRange(1, 30))
		if st := e.s.Stats(); st.BadHeaders != 1 || st.BadSegments != 0 {
			t.Fatalf("stats %+v", st)
		}
		// It is deleted like any other once acknowledged.
		e.s.AckRange(1, e.segFirsts()[1]-1)
		e.sync()
		if slices.Contains(e.segFiles(), segs[0]) {
			t.Fatalf("acknowledged segment with a bad header kept: %v", e.segFiles())
		}
	})
	t.Run("damaged header of the active segment", func(t *testing.T) {
		e := newEnv(t, tiny)
		e.append(1, 2, 3)
		e.sync()
		e.fs.CorruptByte(e.path(spool.SegName(1)), 0)
		e.reopen("close")
		e.wantPending(seqRange(1, 3))
		// Not appended to: new records go to a new segment.
		e.append(4)
		e.reopen("close")
		e.wantPending(seqRange(1, 4))
		if !slices.Contains(e.segFiles(), spool.SegName(4)) {
			t.Fatalf("segments %v", e.segFiles())
		}
	})
	t.Run("other incarnation", func(t *testing.T) {
		other := newEnv(t, tiny)
		other.append(seqRange(1, 20)...)
		other.reopen("close")
		foreign, _ := other.fs.ReadFile(other.path(spool.SegName(1)))

		e := newEnv(t, tiny)
		e.append(seqRange(1, 30)...)
		e.reopen("close")
		first := e.segFiles()[0]
		e.fs.WriteFile(e.path(first), foreign)
		e.reopen("close")
		if st := e.s.Stats(); st.BadSegments != 1 {
			t.Fatalf("stats %+v", st)
		}
		if !slices.Contains(e.fs.Files(e.dir), first+".corrupt") {
			t.Fatalf("not set aside: %v", e.fs.Files(e.dir))
		}
		if got, second := e.pending(), e.segFirsts()[0]; len(got) == 0 || got[0] != second {
			t.Fatalf("pending %v, want from %d", got, second)
		}
	})
	t.Run("garbage named like a segment", func(t *testing.T) {
		e := newEnv(t, tiny)
		e.append(seqRange(1, 3)...)
		e.reopen("close")
		e.fs.WriteFile(e.path(spool.SegName(2)), []byte(strings.Repeat("garbage ", 100)))
		e.append(50)
		e.reopen("close")
		e.wantPending([]uint64{1, 2, 3, 50})
		if st := e.s.Stats(); st.BadSegments != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// Guarantee 3: files that are not the spool's are left alone.
func TestGarbageFilesIgnored(t *testing.T) {
	e := newEnv(t, tiny)
	e.append(1, 2)
	e.reopen("close")
	garbage := []string{"README", "seg-1.log", "seg-000000000000000A.log", "seg-0000000000000001.log.bak", "cursor.old", ".hidden"}
	for _, g := range garbage {
		e.fs.WriteFile(e.path(g), []byte("not mine"))
	}
	e.fs.WriteFile(e.path("meta.tmp"), []byte("half a meta")) // an interrupted write: removed
	if err := e.fs.MkdirAll(e.path("seg-0000000000000009.log"), 0o750); err != nil {
		t.Fatal(err)
	}
	e.reopen("close")
	e.wantPending([]uint64{1, 2})
	files := e.fs.Files(e.dir)
	for _, g := range garbage {
		if !slices.Contains(files, g) {
			t.Errorf("%s removed", g)
		}
	}
	if slices.Contains(files, "meta.tmp") {
		t.Errorf("meta.tmp kept")
	}
}

// A lost or damaged meta file does not orphan the segments.
func TestMetaRebuilt(t *testing.T) {
	for _, damage := range []string{"missing", "corrupt"} {
		e := newEnv(t, tiny)
		inc := e.s.Incarnation()
		e.append(1, 2, 3)
		e.reopen("close")
		if damage == "missing" {
			if err := e.fs.Remove(e.path("meta")); err != nil {
				t.Fatal(err)
			}
		} else {
			e.fs.CorruptByte(e.path("meta"), 12)
		}
		e.reopen("close")
		if e.s.Incarnation() != inc {
			t.Fatalf("%s meta: incarnation %s, want %s adopted from the segments", damage, e.s.Incarnation(), inc)
		}
		e.wantPending([]uint64{1, 2, 3})
	}
	// A wiped spool gets a new incarnation.
	e := newEnv(t, tiny)
	a := e.s.Incarnation()
	e2 := newEnv(t, tiny)
	if a == e2.s.Incarnation() || len(a) != 32 {
		t.Fatalf("incarnations %q %q", a, e2.s.Incarnation())
	}
}

// Guarantee 6: disk full, read-only or I/O errors on write.
func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name  string
		fault spooltest.Fault
	}{
		{"ENOSPC nothing written", spooltest.Fault{Op: spooltest.OpWrite, Match: "seg-*", Err: syscall.ENOSPC}},
		{"ENOSPC short write", spooltest.Fault{Op: spooltest.OpWrite, Match: "seg-*", Err: syscall.ENOSPC, Keep: 30}},
		{"EIO short write", spooltest.Fault{Op: spooltest.OpWrite, Match: "seg-*", Err: syscall.EIO, Keep: 90}},
		{"EROFS", spooltest.Fault{Op: spooltest.OpWrite, Match: "seg-*", Err: syscall.EROFS}},
		{"short write and truncate fails", spooltest.Fault{Op: spooltest.OpWrite, Match: "seg-*", Err: syscall.EIO, Keep: 50}},
		{"cannot create a segment", spooltest.Fault{Op: spooltest.OpOpen, Match: "seg-*", Err: syscall.EROFS}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tiny)
			e.append(1, 2)
			before, _ := e.fs.ReadFile(e.path(spool.SegName(1)))
			e.fs.Inject(tt.fault)
			if strings.Contains(tt.name, "truncate fails") {
				e.fs.Inject(spooltest.Fault{Op: spooltest.OpTruncate, Err: syscall.EIO})
			}
			next := e.s.LastSeq() + 1
			err := e.s.Append(recs(next, next+1))
			for tt.fault.Op == spooltest.OpOpen && err == nil {
				// Append until one needs a new segment.
				before, _ = e.fs.ReadFile(e.path(spool.SegName(1)))
				next += 2
				err = e.s.Append(recs(next, next+1))
			}
			if !errors.Is(err, spool.ErrUnavailable) || !errors.Is(err, tt.fault.Err) {
				t.Fatalf("Append = %v; want ErrUnavailable wrapping %v", err, tt.fault.Err)
			}
			if !strings.Contains(tt.name, "truncate fails") {
				after, _ := e.fs.ReadFile(e.path(spool.SegName(1)))
				if string(after) != string(before) {
					t.Fatalf("failed append left %d bytes behind", len(after)-len(before))
				}
			}
			if e.s.LastSeq() != next-1 {
				t.Fatalf("LastSeq moved to %d", e.s.LastSeq())
			}
			// The caller retries later; the disk has recovered.
			e.append(next, next+1)
			want := seqRange(1, next+1)
			e.wantPending(want)
			e.sync()
			e.reopen("power")
			e.wantPending(want)
			if st := e.s.Stats(); st.CorruptRegions != 0 || st.TornTails != 0 {
				t.Fatalf("recovery found damage: %+v", st)
			}
		})
	}
}

// Guarantee 4: an fsync error is never retried on the same descriptor.
func TestSyncErrorRewrites(t *testing.T) {
	tests := []struct {
		name     string
		failures int
	}{
		{"rewrite succeeds", 1},
		{"rewrite fails too", 2},
		{"many failures", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tiny)
			e.append(1, 2, 3)
			e.sync()
			e.append(4, 5)
			e.append(6)
			// Linux after a writeback error: the dirty pages are dropped and
			// the same descriptor reports success next time.
			e.fs.Inject(spooltest.Fault{Op: spooltest.OpSync, Match: "seg-*", Err: syscall.EIO, DropDirty: true, Times: tt.failures})
			err := e.s.Sync()
			for i := 2; i < tt.failures; i += 2 {
				if err == nil {
					t.Fatalf("Sync succeeded with failures left")
				}
				err = e.s.Sync()
			}
			if tt.failures == 1 {
				if err != nil {
					t.Fatalf("Sync = %v, want the rewrite to succeed", err)
				}
				if !strings.Contains(e.logs.String(), "rewrote the unsynced records") {
					t.Fatalf("not logged:\n%s", e.logs)
				}
			} else {
				if !errors.Is(err, spool.ErrUnavailable) || !strings.Contains(err.Error(), "may be lost") || !errors.Is(err, syscall.EIO) {
					t.Fatalf("Sync = %v", err)
				}
				if got := e.s.SyncedSeq(); got != 3 {
					t.Fatalf("SyncedSeq = %d after failed syncs, want 3", got)
				}
				// Still working: reads come from memory, appends go on.
				e.wantPending(seqRange(1, 6))
				e.append(7)
				e.fs.ClearFaults()
				if err := e.s.Sync(); err != nil {
					t.Fatalf("Sync after the disk recovered: %v", err)
				}
			}
			want := seqRange(1, e.s.LastSeq())
			if got := e.s.SyncedSeq(); got != e.s.LastSeq() {
				t.Fatalf("SyncedSeq = %d, want %d", got, e.s.LastSeq())
			}
			e.reopen("power")
			e.wantPending(want)
			if st := e.s.Stats(); st.CorruptRegions != 0 || st.TornTails != 0 {
				t.Fatalf("recovery found damage: %+v", st)
			}
		})
	}
}

// Guarantee 5: a full spool deletes its oldest segment and reports it.
func TestFullSpoolDropsOldest(t *testing.T) {
	e := newEnv(t, tiny)
	var dropped []spool.DroppedRange
	for s := uint64(1); s <= 200; s++ {
		e.append(s)
		if s%7 == 0 {
			e.sync()
		}
		if got := e.fs.SizeOf(e.dir, "seg-*.log"); got > 4096 {
			t.Fatalf("after %d: %d bytes of segments, cap 4096", s, got)
		}
		dropped = append(dropped, e.s.TakeDropped()...)
	}
	if len(dropped) == 0 {
		t.Fatal("nothing dropped")
	}
	lost := map[uint64]bool{}
	prev := uint64(0)
	for _, d := range dropped {
		if d.Reason != spool.DropFull || d.First <= prev || d.Count != d.Last-d.First+1 {
			t.Fatalf("bad report %+v after %d", d, prev)
		}
		for s := d.First; s <= d.Last; s++ {
			lost[s] = true
		}
		prev = d.Last
	}
	got := e.pending()
	for s := uint64(1); s <= 200; s++ {
		if lost[s] == slices.Contains(got, s) {
			t.Fatalf("seq %d: lost %v, pending %v", s, lost[s], slices.Contains(got, s))
		}
	}
	if !strings.Contains(e.logs.String(), "full: deleted the oldest segment") {
		t.Fatal("not logged")
	}
	checkCursorBeforeRemove(t, e.fs.Journal())
	// Acknowledged records in a dropped segment are not reported.
	e2 := newEnv(t, tiny)
	for s := uint64(1); s <= 200; s++ {
		e2.append(s)
		e2.s.Ack(s)
	}
	if d := e2.s.TakeDropped(); len(d) != 0 {
		t.Fatalf("acknowledged records reported dropped: %+v", d)
	}
}

// Drop reports survive a crash right after the drop, until AckDropped.
func TestDroppedReportSurvivesCrash(t *testing.T) {
	e := newEnv(t, tiny)
	for s := uint64(1); s <= 80; s++ {
		e.append(s)
	}
	want := e.s.TakeDropped()
	if len(want) == 0 {
		t.Fatal("nothing dropped")
	}
	e.reopen("power") // no Sync since the drops
	if got := e.s.TakeDropped(); !slices.Equal(got, want) {
		t.Fatalf("after power cut: %+v, want %+v", got, want)
	}
	if got := e.s.TakeDropped(); len(got) != 0 {
		t.Fatalf("taken twice: %+v", got)
	}
	e.s.AckDropped(want...)
	e.reopen("close")
	if got := e.s.TakeDropped(); len(got) != 0 {
		t.Fatalf("after AckDropped: %+v", got)
	}
}

func TestAcksDeleteSegments(t *testing.T) {
	e := newEnv(t, tiny)
	e.append(seqRange(1, 45)...)
	e.sync()
	segs, f := e.segFiles(), e.segFirsts()
	if len(segs) < 4 {
		t.Fatalf("segments %v", segs)
	}
	// Acknowledge the second segment only, out of order: it goes, the
	// first stays.
	e.s.AckRange(f[1], f[2]-1)
	e.sync()
	if got := e.segFiles(); !slices.Equal(got, slices.Delete(slices.Clone(segs), 1, 2)) {
		t.Fatalf("segments %v", got)
	}
	// All but one record of the first: it stays.
	e.s.Ack(seqRange(1, f[1]-2)...)
	e.sync()
	if got := len(e.segFiles()); got != len(segs)-1 {
		t.Fatalf("segments %v", e.segFiles())
	}
	e.s.Ack(f[1] - 1)
	e.sync()
	if got := e.segFiles(); !slices.Equal(got, segs[2:]) {
		t.Fatalf("segments %v", got)
	}
	// Everything: the active segment stays while open.
	e.s.AckRange(1, 45)
	e.sync()
	if got := e.segFiles(); !slices.Equal(got, segs[len(segs)-1:]) {
		t.Fatalf("segments %v", got)
	}
	if st := e.s.Stats(); st.Pending != 0 || st.OldestPending != 0 || st.AckedThrough != 45 || st.AckRanges != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Cursor first, then delete: journal order, and no delete when the
// cursor cannot be written.
func TestCursorPersistedBeforeDelete(t *testing.T) {
	e := newEnv(t, tiny)
	e.append(seqRange(1, 30)...)
	e.sync()
	first := e.segFiles()[0]
	e.s.AckRange(1, e.segFirsts()[1]-1)

	e.fs.Inject(spooltest.Fault{Op: spooltest.OpRename, Match: "cursor.tmp", Err: syscall.EIO})
	if err := e.s.Sync(); err == nil || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync = %v, want the cursor error", err)
	}
	if !slices.Contains(e.segFiles(), first) {
		t.Fatal("segment deleted although the cursor could not be written")
	}

	mark := len(e.fs.Journal())
	e.sync()
	j := e.fs.Journal()[mark:]
	rename := slices.Index(j, "rename cursor.tmp cursor")
	syncdir := slices.Index(j, "syncdir spool")
	remove := slices.Index(j, "remove "+first)
	if rename < 0 || remove < 0 || !(rename < syncdir && syncdir < remove) {
		t.Fatalf("journal %q", j)
	}
	second := e.segFirsts()[0]
	checkCursorBeforeRemove(t, e.fs.Journal())
	e.reopen("power")
	e.wantPending(seqRange(second, 30))
}

// checkCursorBeforeRemove: every segment removal follows a cursor write
// made durable (rename, then directory fsync).
func checkCursorBeforeRemove(t *testing.T, j []string) {
	t.Helper()
	renamed, synced := -1, -1
	for i, op := range j {
		switch {
		case op == "rename cursor.tmp cursor":
			renamed = i
		case strings.HasPrefix(op, "syncdir") && renamed >= 0:
			synced = i
		case strings.HasPrefix(op, "remove seg-"):
			if renamed < 0 || synced < renamed {
				t.Fatalf("%q at %d without a durable cursor write before it: %q", op, i, j[max(0, i-8):i+1])
			}
		}
	}
}

func TestReopenResumesPendingSet(t *testing.T) {
	for _, how := range []string{"close", "crash", "power"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, func(o spool.Options) spool.Options {
				o = tiny(o)
				o.MaxBytes = 1 << 20 // no drops
				return o
			})
			var want []uint64
			for s := uint64(1); s <= 120; s++ {
				e.append(s)
				if s%3 != 0 && s%5 != 0 {
					want = append(want, s)
				} else {
					e.s.Ack(s)
				}
			}
			e.clock.advance(time.Hour) // the cursor is due
			e.sync()
			before := e.pending()
			if !slices.Equal(before, want) {
				t.Fatalf("before: %v", before)
			}
			e.reopen(how)
			e.wantPending(want)
			if st := e.s.Stats(); st.Pending != int64(len(want)) || st.OldestPending != 1 || st.LastSeq != 120 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestLastSeqAfterAllSegmentsDeleted(t *testing.T) {
	e := newEnv(t, tiny)
	e.append(seqRange(1, 30)...)
	e.s.AckRange(1, 30)
	e.reopen("close")
	if len(e.segFiles()) != 0 {
		t.Fatalf("segments left: %v", e.segFiles())
	}
	if got := e.s.LastSeq(); got != 30 {
		t.Fatalf("LastSeq = %d, want 30", got)
	}
	if err := e.s.Append(recs(30)); !errors.Is(err, spool.ErrSeq) {
		t.Fatalf("Append(30) = %v", err)
	}
	e.append(31)
	e.reopen("power") // 31 never synced
	if got := e.s.LastSeq(); got != 30 {
		t.Fatalf("LastSeq = %d after power cut, want 30", got)
	}
	e.wantPending(nil)
}

func TestSyncSchedule(t *testing.T) {
	e := newEnv(t, func(o spool.Options) spool.Options {
		o.SyncInterval = time.Second
		o.CursorInterval = 10 * time.Second
		return tiny(o)
	})
	if _, ok := e.s.NextSync(); ok {
		t.Fatal("sync wanted with nothing to sync")
	}
	e.append(1)
	e.sync()
	t0 := e.clock.now()
	e.append(2)
	next, ok := e.s.NextSync()
	if !ok || !next.Equal(t0.Add(time.Second)) || e.s.SyncDue() {
		t.Fatalf("NextSync = %v %v, due %v", next, ok, e.s.SyncDue())
	}
	e.clock.advance(time.Second)
	if !e.s.SyncDue() {
		t.Fatal("not due after the interval")
	}
	e.sync()
	if _, ok := e.s.NextSync(); ok {
		t.Fatal("still due after Sync")
	}
	// Acknowledgements: due CursorInterval after the last cursor write.
	writes := e.s.Stats().CursorWrites
	e.s.Ack(1)
	if _, ok := e.s.NextSync(); !ok {
		t.Fatal("cursor change not scheduled")
	}
	e.sync()
	if e.s.Stats().CursorWrites != writes+1 {
		t.Fatal("first cursor change not written")
	}
	e.s.Ack(2)
	e.sync() // too soon: not written
	if e.s.Stats().CursorWrites != writes+1 {
		t.Fatal("cursor written more often than CursorInterval")
	}
	e.clock.advance(10 * time.Second)
	if !e.s.SyncDue() {
		t.Fatal("cursor not due")
	}
	e.sync()
	if e.s.Stats().CursorWrites != writes+2 {
		t.Fatal("cursor not written when due")
	}

	// SyncInterval 0: due as soon as anything is unsynced.
	z := newEnv(t, tiny)
	z.append(1)
	if !z.s.SyncDue() {
		t.Fatal("interval 0: not due")
	}
}

func TestPendingAfterAndMax(t *testing.T) {
	e := newEnv(t, func(o spool.Options) spool.Options {
		o = tiny(o)
		o.MaxBytes = 1 << 20
		return o
	})
	e.append(seqRange(1, 100)...)
	e.append(seqRange(150, 160)...) // a jump, like the agent's counter after a restart
	e.s.Ack(seqRange(20, 40)...)
	tests := []struct {
		after uint64
		max   int
		want  []uint64
	}{
		{0, 3, []uint64{1, 2, 3}},
		{18, 3, []uint64{19, 41, 42}},
		{25, 2, []uint64{41, 42}},
		{99, 0, append([]uint64{100}, seqRange(150, 160)...)},
		{100, 1, []uint64{150}},
		{160, 0, nil},
		{math.MaxUint64, 0, nil},
	}
	for _, tt := range tests {
		if got := pendingOf(t, e.s, tt.after, tt.max); !slices.Equal(got, tt.want) {
			t.Errorf("Pending(%d, %d) = %v, want %v", tt.after, tt.max, got, tt.want)
		}
	}
	// fn stops the iteration.
	n := 0
	if err := e.s.Pending(0, 0, func(spool.Record) bool { n++; return n < 5 }); err != nil || n != 5 {
		t.Fatalf("stopped after %d, %v", n, err)
	}
}

// Pending near the end of a long backlog reads little.
func TestPendingReadsLittle(t *testing.T) {
	cfs := spooltest.NewCountingFS(spooltest.NewFaultFS())
	s, err := spool.Open(spool.Options{Dir: "/spool", FS: cfs, SegmentBytes: 64 << 10, MaxBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 20000; i += 10 {
		var rs []spool.Record
		for j := i; j < i+10; j++ {
			rs = append(rs, spool.Record{Seq: j, Data: payload(j)})
		}
		if err := s.Append(rs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = spool.Open(spool.Options{Dir: "/spool", FS: cfs, SegmentBytes: 64 << 10, MaxBytes: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	total := s.Stats().Bytes
	for _, after := range []uint64{19990, 10000, 15, 7777} {
		cfs.Reset()
		got := pendingOf(t, s, after, 5)
		if !slices.Equal(got, seqRange(after+1, after+5)) {
			t.Fatalf("Pending(%d) = %v", after, got)
		}
		if read := cfs.Counts().BytesRead; read > 64<<10 {
			t.Errorf("Pending(%d, 5) read %d bytes of %d", after, read, total)
		}
	}
	s.Close()
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, func(o spool.Options) spool.Options {
		o = tiny(o)
		o.MaxBytes = 1 << 20
		return o
	})
	const n = 3000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := uint64(1); s <= n; s += 3 {
			if err := e.s.Append(recs(s, s+1, s+2)); err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			if e.s.SyncDue() {
				if err := e.s.Sync(); err != nil {
					t.Errorf("Sync: %v", err)
				}
			}
		}
	}()
	var after uint64
	for acked := 0; acked < n; {
		var batch []uint64
		if err := e.s.Pending(after, 50, func(r spool.Record) bool {
			if r.Seq <= after {
				t.Errorf("seq %d after %d", r.Seq, after)
			}
			after = r.Seq
			batch = append(batch, r.Seq)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		e.s.Ack(batch...)
		acked += len(batch)
		_ = e.s.Stats()
	}
	<-done
	e.sync()
	if st := e.s.Stats(); st.Pending != 0 || st.Segments != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestClosed(t *testing.T) {
	e := newEnv(t, tiny)
	e.append(1)
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := e.s.Append(recs(2)); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("Append = %v", err)
	}
	if err := e.s.Sync(); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("Sync = %v", err)
	}
	if err := e.s.Pending(0, 0, func(spool.Record) bool { return true }); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("Pending = %v", err)
	}
}

func TestReadOnlyTools(t *testing.T) {
	e := newEnv(t, tiny)
	e.append(seqRange(1, 30)...)
	e.s.AckRange(1, 5)
	e.reopen("close")
	e.append(31, 32)
	e.sync()
	bad := e.segFirsts()[1]
	e.fs.CorruptByte(e.path(spool.SegName(bad)), spool.SegHeaderSize+3) // its first record
	mark := len(e.fs.Journal())

	st, err := spool.ReadStats(e.dir, e.fs)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 26 || st.CorruptRegions != 1 || st.LastSeq != 32 || st.Incarnation != e.s.Incarnation() {
		t.Fatalf("ReadStats %+v", st)
	}
	var got []uint64
	if err := spool.Export(e.dir, e.fs, func(r spool.Record) error {
		got = append(got, r.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(seqRange(6, 32), func(s uint64) bool { return s == bad })
	if !slices.Equal(got, want) {
		t.Fatalf("Export %v", got)
	}
	stop := errors.New("stop")
	if err := spool.Export(e.dir, e.fs, func(spool.Record) error { return stop }); err != stop {
		t.Fatalf("Export error = %v", err)
	}
	rep, err := spool.Verify(e.dir, e.fs)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Records != 31 || rep.Pending != 26 || len(rep.Segments) != 3 || rep.Segments[1].CorruptRegions != 1 {
		t.Fatalf("Verify %+v", rep)
	}
	if j := e.fs.Journal()[mark:]; len(j) != 0 {
		t.Fatalf("read-only tools changed files: %q", j)
	}
	e.reopen("close")
	if _, err := spool.ReadStats("/nonexistent", e.fs); err == nil {
		t.Fatal("ReadStats of a missing dir succeeded")
	}
	if _, err := spool.Verify("/nonexistent", e.fs); err == nil {
		t.Fatal("Verify of a missing dir succeeded")
	}
}

func TestOptionLimits(t *testing.T) {
	// Segments at least 64 KiB, at most MaxBytes/4; MaxBytes >= 2 segments.
	e := newEnv(t, func(o spool.Options) spool.Options {
		o.SegmentBytes, o.MaxBytes = 1024, 1<<20
		return o
	})
	big := make([]byte, 40000)
	if err := e.s.Append([]spool.Record{{Seq: 1, Data: big}}); err != nil {
		t.Fatalf("40 KB record in a 64 KiB segment: %v", err)
	}
	if err := e.s.Append([]spool.Record{{Seq: 2, Data: big}}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.segFiles()); n != 2 {
		t.Fatalf("%d segments, want a rotation at 64 KiB", n)
	}
	if err := e.s.Append([]spool.Record{{Seq: 3, Data: make([]byte, 70000)}}); !errors.Is(err, spool.ErrTooLarge) {
		t.Fatalf("70 KB record: %v", err)
	}
}

// A segment that cannot be read at Open is skipped, not given up: the
// acknowledgements persisted meanwhile do not cover it, so its records
// come back when it can be read again.
func TestUnreadableSegmentKept(t *testing.T) {
	e := newEnv(t, tiny)
	e.append(seqRange(1, 30)...)
	f := e.segFirsts()
	e.s.AckRange(f[1], 30) // all but the first segment
	e.reopen("close")
	first := spool.SegName(1)
	// Skip 1: Open reads every segment's header before scanning.
	e.fs.Inject(spooltest.Fault{Op: spooltest.OpOpen, Match: first, Skip: 1, Err: syscall.EIO})
	e.reopen("close")
	e.wantPending(nil)
	e.append(31)
	e.s.Ack(31)
	e.reopen("close")
	e.wantPending(seqRange(1, f[1]-1))
	if !strings.Contains(e.logs.String(), "cannot open segment") {
		t.Fatalf("not logged:\n%s", e.logs)
	}
}
