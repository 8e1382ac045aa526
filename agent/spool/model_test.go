package spool_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path"
	"slices"
	"syscall"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/sensor-agent/sensor-agent/agent/spool"
	"github.com/sensor-agent/sensor-agent/agent/spool/spooltest"
)

// mrec is the model's view of one record.
type mrec struct {
	data         []byte
	durable      bool // at or below SyncedSeq at some point: survives a power cut
	acked        bool
	ackPersisted bool // acknowledged before a cursor write: must never come back
	exempt       bool // a byte of it was corrupted: it may be gone
}

// machine drives a spool on a FaultFS through random operations and
// checks it against a model of the guarantees.
type machine struct {
	t        *rapid.T
	fs       *spooltest.FaultFS
	opts     spool.Options
	clock    *clock
	s        *spool.Spool
	recs     map[uint64]*mrec // every record the spool may still hold
	dropped  []spool.DroppedRange
	nextSeq  uint64
	cw       int64 // CursorWrites seen
	armed    bool  // a fault is injected: errors are allowed
	atRisk   bool  // an error left unsynced records out of the page cache
	ackOps   int
	maxBytes int64
	flipped  map[string]map[int]bool // bytes corrupted, per segment file
}

const modelDir = "/spool"

func newMachine(t *rapid.T) *machine {
	m := &machine{t: t, fs: spooltest.NewFaultFS(), clock: &clock{t: time.Unix(1e9, 0)},
		recs: map[uint64]*mrec{}, nextSeq: 1, maxBytes: 2048, flipped: map[string]map[int]bool{}}
	m.opts = spool.WithMinSegment(spool.Options{Dir: modelDir, FS: m.fs, Now: m.clock.now,
		SegmentBytes: 512, MaxBytes: m.maxBytes, Logger: slog.New(slog.DiscardHandler)}, 256)
	if debugModel {
		m.opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	m.open()
	return m
}

func (m *machine) open() {
	s, err := spool.Open(m.opts)
	if err != nil {
		m.t.Fatalf("Open: %v", err)
	}
	m.s = s
	m.cw = s.Stats().CursorWrites
}

// after runs after every operation: the cheap invariants.
func (m *machine) after() {
	st := m.s.Stats()
	if st.CursorWrites > m.cw && st.AckRanges <= spool.MaxCursorRanges {
		// The cursor written holds every acknowledgement made so far
		// (unless there were more ranges than it keeps: then some may
		// come back, which the model allows by not marking them).
		for _, r := range m.recs {
			if r.acked {
				r.ackPersisted = true
			}
		}
		m.cw = st.CursorWrites
	}
	synced := m.s.SyncedSeq()
	var pending int64
	for seq, r := range m.recs {
		if seq <= synced {
			r.durable = true
		}
		if !r.acked {
			pending++
			if seq > st.LastSeq {
				m.t.Fatalf("record %d above LastSeq %d", seq, st.LastSeq)
			}
		}
	}
	if st.Pending != pending {
		m.t.Fatalf("Stats.Pending = %d, model has %d", st.Pending, pending)
	}
	if synced > st.LastSeq {
		m.t.Fatalf("SyncedSeq %d > LastSeq %d", synced, st.LastSeq)
	}
	if n := m.fs.SizeOf(modelDir, "seg-*.log"); n > m.maxBytes {
		m.t.Fatalf("segments use %d bytes, MaxBytes %d", n, m.maxBytes)
	}
}

func (m *machine) takeDropped() {
	for _, d := range m.s.TakeDropped() {
		if d.First > d.Last || d.Count == 0 || d.Count > d.Last-d.First+1 {
			m.t.Fatalf("malformed report %+v", d)
		}
		if slices.Contains(m.dropped, d) {
			continue // not acknowledged with AckDropped: reported again after a restart
		}
		if d.Reason == spool.DropFull {
			// Exact: the unacknowledged records of the deleted segment.
			var n uint64
			for seq, r := range m.recs {
				if seq >= d.First && seq <= d.Last && !r.acked {
					n++
				}
			}
			if n != d.Count {
				m.t.Fatalf("report %+v: model has %d unacknowledged records in it", d, n)
			}
			for seq := range m.recs {
				if seq >= d.First && seq <= d.Last {
					delete(m.recs, seq)
				}
			}
		}
		m.dropped = append(m.dropped, d)
	}
}

func (m *machine) reported(seq uint64) bool {
	for _, d := range m.dropped {
		if seq >= d.First && seq <= d.Last {
			return true
		}
	}
	return false
}

// errAllowed checks an operation's error against the injected faults.
func (m *machine) errAllowed(op string, err error) {
	if err == nil {
		return
	}
	if !m.armed || !errors.Is(err, spool.ErrUnavailable) {
		m.t.Fatalf("%s: unexpected error (armed %v): %v", op, m.armed, err)
	}
	m.fs.ClearFaults()
	m.armed, m.atRisk = false, true
}

func (m *machine) append() {
	n := rapid.IntRange(1, 4).Draw(m.t, "n")
	seq := max(m.nextSeq, m.s.LastSeq()+1)
	var rs []spool.Record
	for range n {
		seq += uint64(rapid.IntRange(0, 2).Draw(m.t, "gap"))
		rs = append(rs, spool.Record{Seq: seq, Data: rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(m.t, "data")})
		seq++
	}
	m.nextSeq = seq
	err := m.s.Append(rs)
	if debugModel {
		m.t.Logf("Append %v: %v (synced %d)", seqsOf(rs), err, m.s.SyncedSeq())
	}
	m.errAllowed("Append", err)
	if err == nil {
		for _, r := range rs {
			m.recs[r.Seq] = &mrec{data: r.Data}
		}
		m.atRisk = false // Append rewrote anything a failed sync dropped
	}
	m.takeDropped()
}

func (m *machine) sync() {
	err := m.s.Sync()
	if debugModel {
		m.t.Logf("Sync: %v (synced %d)", err, m.s.SyncedSeq())
	}
	m.errAllowed("Sync", err)
	if err == nil {
		m.atRisk = false
	}
	m.takeDropped()
}

func (m *machine) ack() {
	if m.ackOps >= 40 {
		// More could push acknowledged ranges past the 64 the cursor
		// keeps; the model does not track which ones it drops.
		return
	}
	var live []uint64
	for seq := range m.recs {
		live = append(live, seq)
	}
	if len(live) == 0 {
		return
	}
	m.ackOps++
	slices.Sort(live)
	i := rapid.IntRange(0, len(live)-1).Draw(m.t, "from")
	j := rapid.IntRange(i, min(i+8, len(live)-1)).Draw(m.t, "to")
	if rapid.Bool().Draw(m.t, "range") {
		m.s.AckRange(live[i], live[j])
	} else {
		m.s.Ack(live[i : j+1]...)
	}
	for _, seq := range live[i : j+1] {
		m.recs[seq].acked = true
	}
}

func (m *machine) ackDropped() {
	m.s.AckDropped(m.dropped...)
}

// restart checks what a new process finds. keepAll: every appended
// record must be there (crash, clean close), else only durable ones.
func (m *machine) restart(keepAll bool) {
	if debugModel {
		m.t.Logf("restart: files %v", m.fs.Files(modelDir))
	}
	// The faults were for the old process; an fsync error in Open after
	// the kernel dropped pages would lose records for real.
	m.fs.ClearFaults()
	m.open()
	got := map[uint64][]byte{}
	prev := uint64(0)
	if err := m.s.Pending(0, 0, func(r spool.Record) bool {
		if r.Seq <= prev {
			m.t.Fatalf("Pending not increasing: %d after %d", r.Seq, prev)
		}
		prev = r.Seq
		got[r.Seq] = r.Data
		return true
	}); err != nil {
		m.t.Fatalf("Pending: %v", err)
	}
	m.takeDropped()
	for seq, data := range got {
		r := m.recs[seq]
		if r == nil {
			m.t.Fatalf("record %d reappeared (never appended, or dropped)", seq)
		}
		if !bytes.Equal(data, r.data) {
			m.t.Fatalf("record %d: data %q, want %q", seq, data, r.data)
		}
		if r.ackPersisted {
			m.t.Fatalf("record %d was acknowledged and the cursor persisted, but came back", seq)
		}
	}
	for seq, r := range m.recs {
		_, present := got[seq]
		must := !r.acked && !r.exempt && !m.reported(seq) && (r.durable || keepAll && !m.atRisk)
		if must && !present {
			m.t.Fatalf("record %d lost (durable %v, keepAll %v, atRisk %v); pending %v", seq, r.durable, keepAll, m.atRisk, sortedKeys(got))
		}
		if !present {
			if !r.acked {
				delete(m.recs, seq) // lost, as allowed
			}
			// An acknowledged record may still be on disk and come back
			// if the cursor is lost: keep it in the model.
			continue
		}
		// Open synced it; if it was acknowledged, the acknowledgement
		// was not persisted: it is pending again (a duplicate).
		r.durable, r.exempt, r.acked = true, false, false
	}
	m.atRisk, m.armed = false, false
	m.fs.ClearFaults()
	if last := m.s.LastSeq(); last < prev {
		m.t.Fatalf("LastSeq %d below a pending record %d", last, prev)
	}
}

func sortedKeys(m map[uint64][]byte) []uint64 {
	var out []uint64
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (m *machine) crash() { m.fs.Crash(); m.restart(true) }
func (m *machine) power() { m.fs.PowerCut(); m.restart(false) }

func (m *machine) tear() {
	m.fs.TearLastWrite(rapid.IntRange(0, 80).Draw(m.t, "keep"))
	m.fs.PowerCut()
	m.restart(false)
}

func (m *machine) close() {
	ranges := m.s.Stats().AckRanges
	err := m.s.Close()
	m.errAllowed("Close", err)
	// Close writes the cursor only if it changed: count the writes.
	if m.s.Stats().CursorWrites > m.cw && ranges <= spool.MaxCursorRanges {
		for _, r := range m.recs {
			if r.acked {
				r.ackPersisted = true
			}
		}
	}
	m.fs.Crash() // the handles of the closed spool are gone either way
	m.restart(true)
}

var recordMagic = spool.AppendRecord(nil, 0, nil)[:4]

// corrupt flips a byte of a segment and exempts the record it hits.
func (m *machine) corrupt() {
	var segs []string
	for _, n := range m.fs.Files(modelDir) {
		if ok, _ := path.Match("seg-*.log", n); ok {
			segs = append(segs, n)
		}
	}
	if len(segs) == 0 {
		return
	}
	name := modelDir + "/" + rapid.SampledFrom(segs).Draw(m.t, "segment")
	data, _ := m.fs.ReadFile(name)
	if len(data) == 0 {
		return
	}
	off := rapid.IntRange(0, len(data)-1).Draw(m.t, "offset")
	if m.flipped[name][off] {
		return // flipping it back would resurrect a record reported lost
	}
	if m.flipped[name] == nil {
		m.flipped[name] = map[int]bool{}
	}
	m.flipped[name][off] = true
	if seq, ok := recordAt(data, off); ok && m.recs[seq] != nil {
		m.recs[seq].exempt = true
	}
	m.fs.CorruptByte(name, int64(off))
}

// recordAt finds the valid record covering off, reading like recovery.
func recordAt(data []byte, off int) (uint64, bool) {
	p := spool.SegHeaderSize
	for p < len(data) {
		seq, _, n, err := spool.DecodeRecord(data[p:])
		if err == nil {
			if off >= p && off < p+n {
				return seq, true
			}
			p += n
			continue
		}
		q := bytes.Index(data[p+1:], recordMagic)
		if q < 0 {
			break
		}
		p += 1 + q
	}
	return 0, false
}

func (m *machine) corruptCursor() {
	data, ok := m.fs.ReadFile(modelDir + "/cursor")
	if !ok || len(data) == 0 {
		return
	}
	m.fs.CorruptByte(modelDir+"/cursor", int64(rapid.IntRange(0, len(data)-1).Draw(m.t, "offset")))
	for _, r := range m.recs {
		r.ackPersisted = false // acknowledgements may be lost: duplicates
	}
}

func (m *machine) enospc() {
	if m.armed {
		return
	}
	m.armed = true
	err := rapid.SampledFrom([]error{syscall.ENOSPC, syscall.EIO, syscall.EROFS}).Draw(m.t, "err")
	m.fs.Inject(spooltest.Fault{Op: spooltest.OpWrite, Match: "seg-*.log", Err: err, Keep: rapid.IntRange(0, 60).Draw(m.t, "keep")})
}

func (m *machine) syncFail() {
	if m.armed {
		return
	}
	m.armed = true
	m.fs.Inject(spooltest.Fault{Op: spooltest.OpSync, Match: "seg-*.log", Err: syscall.EIO, DropDirty: true,
		Times: rapid.IntRange(1, 2).Draw(m.t, "times")})
}

// pending compares Pending with the model while running.
func (m *machine) pending() {
	after := uint64(rapid.IntRange(0, int(m.nextSeq)).Draw(m.t, "after"))
	max := rapid.IntRange(0, 6).Draw(m.t, "max")
	all := pendingSeqs(m.t, m.s, after, 0)
	for _, seq := range all {
		r := m.recs[seq]
		if r == nil || r.acked {
			m.t.Fatalf("Pending(%d) returned %d: model %+v", after, seq, r)
		}
	}
	for seq, r := range m.recs {
		if seq > after && !r.acked && !r.exempt && !slices.Contains(all, seq) {
			m.t.Fatalf("Pending(%d) misses %d: %v", after, seq, all)
		}
	}
	if max > 0 {
		want := all[:min(max, len(all))]
		if got := pendingSeqs(m.t, m.s, after, max); !slices.Equal(got, want) {
			m.t.Fatalf("Pending(%d, %d) = %v, want %v", after, max, got, want)
		}
	}
}

func pendingSeqs(t *rapid.T, s *spool.Spool, after uint64, max int) []uint64 {
	var out []uint64
	if err := s.Pending(after, max, func(r spool.Record) bool {
		if len(out) > 0 && r.Seq <= out[len(out)-1] || r.Seq <= after {
			t.Fatalf("Pending(%d): %d after %v", after, r.Seq, out)
		}
		out = append(out, r.Seq)
		return true
	}); err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return out
}

// TestModel is the state-machine property test of the guarantees:
//   - after a crash (page cache kept) or a clean Close every appended
//     record is pending again, unless acknowledged, reported dropped or
//     hit by a corrupted byte;
//   - after a power cut (optionally tearing the last write) every record
//     at or below SyncedSeq at some point survives, with the same
//     exceptions;
//   - records never come back after their acknowledgement reached a
//     persisted cursor (CursorWrites grew, or Close succeeded); ones
//     acknowledged later may (at-least-once);
//   - Pending is strictly increasing and matches the model while
//     running; Stats.Pending is exact; "spool full" reports count exactly
//     the unacknowledged records deleted; segments never use more than
//     MaxBytes;
//   - write and fsync errors surface only as ErrUnavailable and lose
//     nothing already appended.
func TestModel(t *testing.T) {
	ops := []string{
		"append", "append", "append", "append", "append", "append",
		"sync", "sync", "sync", "ack", "ack", "ack", "pending", "pending",
		"tick", "crash", "power", "tear", "close", "corrupt", "enospc", "syncfail",
		"ackdropped", "corruptcursor",
	}
	rapid.Check(t, func(t *rapid.T) {
		m := newMachine(t)
		steps := rapid.IntRange(20, 200).Draw(t, "steps")
		for range steps {
			switch op := rapid.SampledFrom(ops).Draw(t, "op"); op {
			case "append":
				m.append()
			case "sync":
				m.sync()
			case "ack":
				m.ack()
			case "pending":
				m.pending()
			case "tick":
				m.clock.advance(time.Duration(rapid.IntRange(1, 3).Draw(t, "s")) * time.Second)
			case "crash":
				m.crash()
			case "power":
				m.power()
			case "tear":
				m.tear()
			case "close":
				m.close()
			case "corrupt":
				m.corrupt()
			case "corruptcursor":
				m.corruptCursor()
			case "enospc":
				m.enospc()
			case "syncfail":
				m.syncFail()
			case "ackdropped":
				m.ackDropped()
			default:
				panic(op)
			}
			m.after()
		}
		m.fs.ClearFaults()
		m.armed = false
		m.close()
	})
}

// debugModel traces operations and the spool's log; set it to look at a
// failing case.
const debugModel = false

func seqsOf(rs []spool.Record) []uint64 {
	var out []uint64
	for _, r := range rs {
		out = append(out, r.Seq)
	}
	return out
}
