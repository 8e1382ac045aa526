package spool_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/spool"
	"github.com/sensor-agent/sensor-agent/agent/spool/spooltest"
)

// realisticReading is what the agent stores: topic + "\n" + reading JSON,
// about 130 bytes.
func realisticReading(seq uint64) []byte {
	return fmt.Appendf(nil, "sensors/pi-gh-01/greenhouse\n{\"seq\":%d,\"sensor\":\"greenhouse\",\"time\":\"2026-11-26T13:00:00.003Z\",\"values\":{\"temperature_c\":21.43}}", seq)
}

type ampResult struct {
	readings     int
	encoded      int // bytes of one encoded record
	counts       spooltest.Counts
	simulatedMin float64
	acks         int // acknowledgement calls: each overwrites cursor.live once
}

// simulateTenMinutes appends 10 readings/s for 10 simulated minutes,
// syncs when SyncDue says (SyncInterval 1s) and acknowledges everything
// every 10 s, as a publish per flush_interval would.
func simulateTenMinutes(tb testing.TB) ampResult {
	cfs := spooltest.NewCountingFS(spooltest.NewFaultFS())
	clk := &clock{t: time.Date(2026, 11, 26, 13, 0, 0, 0, time.UTC)}
	s, err := spool.Open(spool.Options{Dir: "/var/lib/sensor-agent/spool", FS: cfs, SyncInterval: time.Second, Now: clk.now})
	if err != nil {
		tb.Fatal(err)
	}
	const perSecond, seconds = 10, 600
	seq := uint64(1040)
	acks := 0
	for i := range perSecond * seconds {
		clk.advance(time.Second / perSecond)
		seq++
		if err := s.Append([]spool.Record{{Seq: seq, Data: realisticReading(seq)}}); err != nil {
			tb.Fatal(err)
		}
		if s.SyncDue() {
			if err := s.Sync(); err != nil {
				tb.Fatal(err)
			}
		}
		if i%(10*perSecond) == 10*perSecond-1 {
			s.AckRange(1, seq)
			acks++
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return ampResult{readings: perSecond * seconds, encoded: spool.RecordHeaderSize + len(realisticReading(seq)),
		counts: cfs.Counts(), simulatedMin: seconds / 60, acks: acks}
}

// BenchmarkBytesPerReading reports what reaches the card per reading:
// B/reading counts every byte passed to write (records, segment headers,
// cursor and meta files); page-B/reading rounds each fsync up to the 4 KiB
// pages it flushes (a directory fsync counts one page).
func BenchmarkBytesPerReading(b *testing.B) {
	var r ampResult
	for b.Loop() {
		r = simulateTenMinutes(b)
	}
	n := float64(r.readings)
	b.ReportMetric(float64(r.counts.BytesWritten)/n, "B/reading")
	b.ReportMetric(float64(r.counts.SyncedPageBytes)/n, "page-B/reading")
	b.ReportMetric(float64(r.encoded), "encoded-B/reading")
	b.ReportMetric(float64(r.counts.BytesWritten)/n/float64(r.encoded), "x-encoded")
	b.ReportMetric(float64(r.counts.Syncs+r.counts.DirSyncs)/r.simulatedMin, "fsyncs/min")
}

// The target, checked in every test run: logical bytes written at most
// twice the encoded reading size.
func TestWriteAmplification(t *testing.T) {
	r := simulateTenMinutes(t)
	perReading := float64(r.counts.BytesWritten) / float64(r.readings)
	t.Logf("%.1f B/reading written (encoded %d), %.0f page-B/reading, %.1f fsyncs/min, %d cursor+meta renames",
		perReading, r.encoded, float64(r.counts.SyncedPageBytes)/float64(r.readings),
		float64(r.counts.Syncs+r.counts.DirSyncs)/r.simulatedMin, r.counts.Renames)
	if perReading > 2*float64(r.encoded) {
		t.Fatalf("%.1f bytes written per reading, more than twice the %d-byte encoding", perReading, r.encoded)
	}
	if r.counts.Writes > int64(r.readings)+int64(r.counts.Renames)+int64(r.acks)+20 {
		t.Fatalf("%d writes for %d single-record appends: appends are not one write each", r.counts.Writes, r.readings)
	}
}

// BenchmarkAppend: the sampling path on the real filesystem, one
// 10-reading group per Append, no fsync (the page cache only).
func BenchmarkAppend(b *testing.B) {
	s, err := spool.Open(spool.Options{Dir: b.TempDir(), MaxBytes: 16 << 20, SegmentBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	group := make([]spool.Record, 10)
	seq := uint64(0)
	b.SetBytes(int64(10 * len(realisticReading(1000))))
	b.ReportAllocs()
	for b.Loop() {
		for i := range group {
			seq++
			group[i] = spool.Record{Seq: seq, Data: realisticReading(1000)}
		}
		if err := s.Append(group); err != nil {
			b.Fatal(err)
		}
		s.AckRange(1, seq) // keep the spool from filling: segments are deleted on Sync
		if seq%10000 == 0 {
			if err := s.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPendingBacklog: draining a 4 MiB backlog in batches of 500.
func BenchmarkPendingBacklog(b *testing.B) {
	s, err := spool.Open(spool.Options{Dir: b.TempDir(), MaxBytes: 16 << 20, SegmentBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var seq uint64
	for range 3000 {
		var g []spool.Record
		for range 10 {
			seq++
			g = append(g, spool.Record{Seq: seq, Data: realisticReading(seq)})
		}
		if err := s.Append(g); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		var after uint64
		for n := 0; ; n++ {
			got := 0
			if err := s.Pending(after, 500, func(r spool.Record) bool { after = r.Seq; got++; return true }); err != nil {
				b.Fatal(err)
			}
			if got == 0 {
				break
			}
		}
	}
	b.ReportMetric(float64(seq), "records/op")
}
