package agent

// Regressions found by reading the store against the sender: each test
// once failed. Names say what must hold.

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

func testRecs(from, to uint64, h Head, pad int) []spool.Record {
	var out []spool.Record
	for q := from; q <= to; q++ {
		js := fmt.Sprintf(`{"seq":%d,"pad":%q}`, q, strings.Repeat("x", pad))
		out = append(out, spool.Record{Seq: q, Data: appendRecord(nil, h, []byte(js))})
	}
	return out
}

func appendAll(st *store, recs []spool.Record) {
	for len(recs) > 0 {
		n := min(len(recs), maxGroup)
		st.Append(recs[:n])
		recs = recs[n:]
	}
}

func openTestStore(t *testing.T, o spool.Options, maxMem int) *store {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	st, err := openStore(o, maxMem, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// spoolThenMemory is a store holding seqs 1..300 in its spool (synced)
// and 301..310 in memory.
func spoolThenMemory(t *testing.T, o spool.Options) (*store, Head) {
	st := openTestStore(t, o, 1<<20)
	h := Head{Topic: "t"}
	appendAll(st, testRecs(1, 300, h, 10))
	st.Sync()
	forceMemoryMode(st)
	st.Append(testRecs(301, 310, h, 10))
	return st, h
}

func forceMemoryMode(st *store) {
	st.mu.Lock()
	st.degraded, st.retryAt = true, time.Now().Add(time.Hour)
	st.mu.Unlock()
}

func retryNow(st *store) {
	st.mu.Lock()
	st.retryAt = time.Time{}
	st.mu.Unlock()
}

// Records the writer appends while Pending reads the spool (unsynced) are
// not handed to the sender.
func TestPendingNeverShowsUnsyncedAppendedMeanwhile(t *testing.T) {
	st := openTestStore(t, spool.Options{}, 1<<20)
	h := Head{Topic: "t"}
	appendAll(st, testRecs(1, 300, h, 10))
	if _, err := st.Sync(); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	first := true
	st.Pending(0, 4096, func(r spool.Record, inc string) bool {
		if first {
			first = false
			st.Append(testRecs(301, 305, h, 10)) // the writer, concurrently
		}
		got = append(got, r.Seq)
		return true
	})
	synced := st.sp.SyncedSeq()
	for _, q := range got {
		if q > synced {
			t.Errorf("seq %d handed to the sender while the spool is synced only through %d", q, synced)
		}
	}
}

// Memory moved to the spool while Pending runs is emitted once, in order.
func TestPendingMoveMemMeanwhile(t *testing.T) {
	st, h := spoolThenMemory(t, spool.Options{})
	var got []uint64
	first := true
	st.Pending(0, 4096, func(r spool.Record, inc string) bool {
		if first {
			first = false
			retryNow(st)
			st.Append(testRecs(311, 311, h, 10)) // recovers: memory moves to the spool
		}
		got = append(got, r.Seq)
		return true
	})
	seen := map[uint64]int{}
	for i, q := range got {
		seen[q]++
		if i > 0 && q <= got[i-1] {
			t.Errorf("seq %d after %d: not increasing", q, got[i-1])
			break
		}
	}
	for q, n := range seen {
		if n > 1 {
			t.Errorf("seq %d emitted %d times", q, n)
		}
	}
}

// A spool closed by a concurrent reincarnation: Pending stops rather than
// emit memory records above the unread ones (the sender would skip them).
func TestPendingSpoolReplacedMeanwhile(t *testing.T) {
	dir := t.TempDir() + "/spool"
	st, _ := spoolThenMemory(t, spool.Options{Dir: dir})
	var got []uint64
	first := true
	_, err := st.Pending(0, 4096, func(r spool.Record, inc string) bool {
		if first {
			first = false
			os.RemoveAll(dir)
			st.Sync() // the writer notices the deletion: Salvage closes the old spool
		}
		got = append(got, r.Seq)
		return true
	})
	liveRead := got[len(got)-1]
	t.Logf("err=%v emitted %d records, last %d", err, len(got), liveRead)
	var later []uint64
	st.Pending(liveRead, 4096, func(r spool.Record, inc string) bool { later = append(later, r.Seq); return true })
	seen := map[uint64]bool{}
	for _, q := range append(got, later...) {
		seen[q] = true
	}
	var missing []uint64
	for q := uint64(1); q <= 310; q++ {
		if !seen[q] {
			missing = append(missing, q)
		}
	}
	if len(missing) > 0 {
		sp, mem := st.Counts()
		t.Errorf("%d pending records never reach the live reader (first %d, last %d); store says %d in spool, %d in memory",
			len(missing), missing[0], missing[len(missing)-1], sp, mem)
	}
}

// A full spool dropping a segment of records moved from memory reports
// them under their volatile incarnation, not the spool's.
func TestDropFullNamesTheRecordsIncarnation(t *testing.T) {
	st := openTestStore(t, spool.Options{MaxBytes: 128 << 10}, 1<<20)
	h := Head{Topic: "t"}
	forceMemoryMode(st)
	st.Append(testRecs(1, 30, h, 1000)) // to memory, volatile
	retryNow(st)
	st.Append(testRecs(31, 31, h, 1000)) // memory moves to the spool
	for q := uint64(32); q < 400; q += 10 {
		st.Append(testRecs(q, q+9, h, 1000))
	}
	var found bool
	for _, d := range st.Dropped() {
		if d.First <= 1 && d.Last >= 1 {
			found = true
			if d.Incarnation != st.Volatile() {
				t.Errorf("seqs 1..30 were numbered under the volatile incarnation %s; report %+v names %s (spool inc %s)",
					st.Volatile(), d, d.Incarnation, st.Incarnation())
			}
		}
	}
	if !found {
		t.Fatalf("no drop report for seq 1: %+v", st.Dropped())
	}
}

// Salvage reads the active segment even when nothing read it before.
func TestSalvageActiveSegment(t *testing.T) {
	dir := t.TempDir() + "/spool"
	st := openTestStore(t, spool.Options{Dir: dir}, 1<<20)
	h := Head{Topic: "t"}
	st.Append(testRecs(1, 10, h, 10))
	if _, err := st.Sync(); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	st.Sync()
	sp, mem := st.Counts()
	if sp+mem != 10 {
		t.Errorf("after the deletion %d in spool, %d in memory; want the 10 records moved; dropped: %+v", sp, mem, st.Dropped())
	}
}

// A memory record and a spool record with the same seq (two incarnations)
// are acknowledged apart.
func TestAckByIncarnation(t *testing.T) {
	st := openTestStore(t, spool.Options{}, 1<<20)
	h := Head{Topic: "t"}
	st.Append(testRecs(1, 10, h, 10))
	st.Sync()
	other := Head{Topic: "t", Incarnation: strings.Repeat("ab", 16), Volatile: true}
	st.adopt(carried{recs: testRecs(5, 6, other, 10)})
	st.Append(testRecs(11, 11, h, 10)) // recovers: 5 and 6 stay in memory (<= LastSeq)
	_, mem0 := st.Counts()
	st.Ack(st.Incarnation(), []uint64{5}) // the spool's reading 5 was delivered
	_, mem1 := st.Counts()
	if mem1 != mem0 {
		t.Errorf("acknowledging the spool's seq 5 also acknowledged the memory record (other incarnation): memory %d -> %d", mem0, mem1)
	}
}

// Backlog records hidden above the durable frontier are read once durable,
// not skipped for the rest of the run.
func TestBacklogWaitsForHidden(t *testing.T) {
	cfg := testConfig(t, "", "", "  - {name: a, driver: sim, interval: 100ms, count: 1}\n")
	a := start(t, cfg, &fakePub{}, Options{})
	st := a.st.store
	st.Append(testRecs(1, 10, Head{Topic: "sensors/pi-test/a"}, 10)) // not synced yet
	s := newSender(a)
	s.refillBacklog()
	s.refillBacklog()
	st.Sync() // now durable
	s.backlog = nil
	s.refillBacklog()
	s.pullLive()
	n := len(s.backlog) + len(s.ready) + s.live.Len()
	if n == 0 {
		t.Errorf("records 1..10 are durable and pending (%d) but the sender will never read them: backPos=%d liveStart=%d liveRead=%d",
			st.PendingCount(), s.backPos, s.liveStart, s.liveRead)
	}
}

// spool.dir == state_dir: the agent does not lock itself out.
func TestSpoolDirIsStateDir(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "", "  - {name: a, driver: sim, interval: 100ms, count: 1}\n")
	cfg.Spool.Dir = dir
	a := New(cfg, Options{Publisher: &fakePub{}, BootID: func() string { return "b" }, Clock: &flipClock{}})
	if err := a.Provision(); err != nil {
		t.Errorf("Provision with spool.dir == state_dir: %v", err)
	}
	a.Cleanup()
}

// Only the meta file deleted: nothing is published twice.
func TestStoreMetaDeleted(t *testing.T) {
	dir := t.TempDir() + "/spool"
	var logs syncBuf
	st, err := openStore(spool.Options{Dir: dir}, 1<<20, slog.New(slog.NewTextHandler(&logs, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inc := st.Incarnation()
	st.Append(testRecs(1, 10, Head{Topic: "t"}, 10))
	st.Sync()
	os.Remove(dir + "/meta")
	st.Sync()
	sp, mem := st.Counts()
	t.Logf("after: spool=%v inc=%s (old %s) spErr=%v degraded=%v; %d in spool, %d in memory", st.sp != nil, st.Incarnation(), inc, st.spErr, st.degraded, sp, mem)
	// the next retry opens the same directory again
	retryNow(st)
	st.Append(testRecs(11, 11, Head{Topic: "t"}, 10))
	sp, mem = st.Counts()
	t.Logf("after retry: inc=%s; %d in spool, %d in memory", st.Incarnation(), sp, mem)
	var got []uint64
	st.Pending(0, 100, func(r spool.Record, inc string) bool { got = append(got, r.Seq); return true })
	t.Logf("pending: %v", got)
}

// Memory records that became backlog and then moved to the spool (above
// the frontier until the next fsync) are not skipped by the backlog.
func TestBacklogMovedMemory(t *testing.T) {
	cfg := testConfig(t, "", "", "  - {name: a, driver: sim, interval: 100ms, count: 1}\n")
	a := start(t, cfg, &fakePub{}, Options{})
	st := a.st.store
	h := Head{Topic: "sensors/pi-test/a"}
	s := newSender(a)
	forceMemoryMode(st)
	st.Append(testRecs(1, 10, h, 10)) // disk failing: memory
	s.pullLive()                      // live reads them
	s.toBacklog()                     // a publish failed: they are backlog now
	retryNow(st)
	st.Append(testRecs(11, 11, h, 10)) // disk back: memory moves to the spool (not yet synced)
	s.refillBacklog()                  // the sender, within sync_interval
	st.Sync()
	s.refillBacklog()
	s.pullLive()
	var seqs []uint64
	for _, b := range append(s.backlog, s.ready...) {
		seqs = append(seqs, b.Seqs...)
	}
	seqs = s.live.AppendSeqs(seqs)
	if len(seqs) < 11 {
		t.Errorf("sender holds %v; store has %d pending; backPos=%d liveStart=%d liveRead=%d", seqs, st.PendingCount(), s.backPos, s.liveStart, s.liveRead)
	}
}

// A group that does not fit a small segment (a nearly full disk) is split,
// not taken for a failing disk.
func TestMoveMemSplitsGroups(t *testing.T) {
	st := openTestStore(t, spool.Options{MaxBytes: 128 << 10}, 1<<20)
	h := Head{Topic: "sensors/pi-greenhouse-01/bme280"}
	forceMemoryMode(st)
	appendAll(st, testRecs(1, 300, h, 200)) // ~250-byte readings, to memory
	retryNow(st)
	st.Append(testRecs(301, 301, h, 150))
	_, mem := st.Counts()
	t.Logf("degraded=%v spErr=%v in memory %d", st.degraded, st.spErr, mem)
	if st.degraded {
		t.Errorf("the spool works, but memory cannot move: %v", st.spErr)
	}
}
