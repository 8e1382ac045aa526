// Package spool is the agent's durable queue between sampling and
// publishing: an append-only, segmented log on disk, in pure Go, built
// for a Raspberry Pi that goes offline for hours, loses power without
// warning and writes to an SD card that wears out.
//
// # Use
//
//	s, err := spool.Open(spool.Options{Dir: "/var/lib/sensor-agent/spool", SyncInterval: time.Second})
//	// sampling: one Append per group of readings (one write syscall)
//	err = s.Append([]spool.Record{{Seq: r.Seq, Data: topicNewlineJSON}})
//	// a goroutine: sleep until NextSync, then Sync (one fdatasync)
//	// publishing: live data first, then the backlog, oldest first
//	err = s.Pending(after, 500, func(r spool.Record) bool { ...; return true })
//	s.Ack(seqs...)                  // after AWS accepted them, in any order
//	lost := s.TakeDropped()         // publish a loss report, then
//	s.AckDropped(lost...)
//	err = s.Close()
//
// Sequence numbers are the caller's (the agent's device-wide counter):
// strictly increasing across Append calls, gaps allowed. Delivery is
// at-least-once: a record may be returned again after a restart if its
// acknowledgement had not been persisted yet.
//
// # Guarantees
//
//  1. A process crash (SIGKILL, panic, OOM kill) loses nothing Append
//     returned for: every group is in the OS page cache before Append
//     returns, and Open fsyncs the last segment.
//  2. A power cut loses at most the records above SyncedSeq: Sync makes
//     everything appended durable with one fdatasync (plus a directory
//     fsync after a segment was created or deleted). The caller picks the
//     loss window with SyncInterval and NextSync/SyncDue.
//  3. Open never refuses to start because of the spool's own files: torn
//     tails are cut off, corrupt records skipped, damaged headers and
//     cursors survived (see Recovery). Damage is logged, counted in Stats
//     and, where records may be gone, reported by TakeDropped.
//  4. fsync errors are not retried on the same descriptor (after a failed
//     fsync Linux may drop the dirty pages and report success next time):
//     the unsynced bytes are kept in memory; the file is reopened, cut back
//     to the last synced size, rewritten and synced. If that fails too,
//     Sync says which records may be lost, and keeps trying.
//  5. Disk use of segments never exceeds MaxBytes: before an append would
//     pass it, the oldest segment is deleted, acknowledged or not, and the
//     unacknowledged records in it are reported as a DroppedRange. Append
//     never blocks.
//  6. ENOSPC, EROFS, EIO: Append returns an error wrapping ErrUnavailable
//     (and the cause) after cutting off any partial write, so the spool
//     is as if the call had not happened; the caller keeps the records in
//     memory and retries later.
//  7. Few bytes reach the card: a record costs its payload plus a 20-byte
//     header, a group is one write, the cursor (acknowledgements) is
//     rewritten at most every CursorInterval. BenchmarkBytesPerReading
//     measures it.
//
// # Files
//
// Options.Dir holds:
//
//	meta                      the spool's incarnation (created once)
//	cursor                    acknowledgements and pending loss reports (fsynced)
//	cursor.live               the same, overwritten after every acknowledgement, not fsynced
//	seg-<first seq, 16 hex>.log  segments, oldest first
//	*.corrupt                 damaged segments set aside (at most 4 kept)
//	lock                      flocked while a process has the spool open for writing
//	reserve                   64 KiB given back when a full disk blocks the cursor write
//
// Other files are ignored; cursor.tmp and meta.tmp (interrupted writes)
// are removed. guard.go keeps the spool working when the world around it
// misbehaves: a second process (ErrLocked), a disk it filled itself (the
// reserve), a limit larger than the disk (MaxBytes fitted to free space,
// Stats.MaxBytes), and the directory deleted while in use (ErrGone, then
// Salvage).
//
// meta is one line: "spool v1 <incarnation, 32 hex> <CRC32C of what
// precedes, 8 hex>\n". The incarnation is a random 128-bit id made when
// the directory is first used, so a wiped spool is a new one. If meta is
// lost, it is rebuilt from the newest segment header's incarnation.
//
// A segment starts with a 36-byte header, then records back to back; all
// integers little-endian, CRCs are CRC32C (Castagnoli):
//
//	header:  "SPSG" | version u16 (1) | header size u16 (36) | incarnation [16] | first seq u64 | CRC u32 of bytes 0..31
//	record:  magic F0 5C A1 1E | payload length u32 | seq u64 | CRC u32 of bytes 0..15 + payload | payload
//
// The magic is the sync marker: after a corrupt region a reader searches
// for the next magic whose record passes its CRC. Payloads are at most
// MaxRecordSize (1 MiB) and must fit in a segment. A segment is sealed
// (synced, then never written again) when the next group would pass
// SegmentBytes; a group is never split across segments.
//
// cursor and cursor.live hold the same encoding (cursor.live framed by a
// 4-byte length, since it is overwritten in place); Open takes the valid
// one with the higher generation. The layout, version 2 (version 1,
// without the generation and the per-report incarnation, is still read):
//
//	"SPCU" | version u16 (2) | 0 u16 | incarnation [16] | generation u64 |
//	watermark u64 | last seq u64 | synced seq u64 | R u32 | D u32 |
//	R × (first u64, last u64)                 acknowledged ranges above the watermark, lowest 8192
//	D × (first u64, last u64, count u64, reason u8, 7 zero bytes, incarnation [16])   loss reports, at most 64
//	CRC u32 of everything before
//
// Every seq up to the watermark is acknowledged or was never appended.
// The watermark is kept just below the oldest unacknowledged record, and
// ranges with no record between them are merged, so the set stays small.
// "synced seq" is the highest record known durable when the cursor was
// written: if a later Open finds less, the storage lost synced data and
// the gap is reported (DropLost).
//
// # Recovery (Open)
//
//   - Torn tail: bytes after the last valid record of the last segment
//     are cut off (Stats.TornTails). A last segment with no valid record
//     and a sound, short or all-zero header (torn while being created) is
//     removed.
//   - Corrupt record (bad CRC, impossible length, out-of-order seq):
//     skipped by resynchronising on the next magic + valid CRC; counted
//     (Stats.CorruptRegions/CorruptBytes), logged, and the seqs between
//     the valid neighbours are reported once as a DropCorrupt range.
//   - Damaged segment header: the records behind it are salvaged (they
//     have their own CRCs; Stats.BadHeaders) and the segment is never
//     appended to again. A segment of another incarnation, or with no
//     valid header and no valid record, is renamed to *.corrupt
//     (Stats.BadSegments).
//   - Unreadable cursor: acknowledgements fall back to "nothing beyond
//     what the segments say", so records still on disk are sent again
//     (duplicates, not loss); a fresh cursor is written
//     (Stats.CursorErrors). Pending loss reports in it are lost.
//   - A segment that cannot be opened or read is skipped and kept; the
//     watermark does not pass its seqs, so its records come back when a
//     later Open can read them.
//   - Whole segments whose records are all acknowledged are deleted
//     (never the active one; a fully acknowledged last segment is not
//     reused at Open, so it goes too). The cursor that makes a segment
//     deletable is always persisted, and the directory fsynced, before
//     the delete.
//
// # Design notes
//
// Sync always performs the fdatasync; SyncInterval only drives NextSync
// and SyncDue, the caller's schedule (with 0, SyncDue is true whenever
// anything is unsynced, i.e. "sync after every group"). A Sync the
// caller asks for is never silently skipped.
//
// Writes use WriteAt at offsets the spool tracks, not Write at the file
// position: a failed, partial write can never shift where later records
// land. Reads of the active segment's unsynced tail are served from the
// in-memory copy kept for the fsync-error path. Pending finds its start
// with a binary search over the segments and a sparse per-segment offset
// index (an entry every 16 KiB), then reads sequentially in 64 KiB
// chunks, so draining a backlog never rescans the spool. Append fsyncs
// only when it seals a full segment and when it must delete a segment to
// stay under MaxBytes (the cursor is persisted first). On Linux, File.Sync
// of the OS filesystem is fdatasync (syscall.Fdatasync; golang.org/x/sys
// is not in go.sum).
package spool
