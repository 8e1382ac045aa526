package agent

// The store's answer to a failing disk: appends go to memory, the spool is
// tried again every spoolRetry, memory moves back when it works, a deleted
// spool is salvaged and replaced under a new incarnation, and records not
// yet fsynced on a failing disk are rescued to memory.

import (
	"errors"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// failLocked enters memory mode after an append failed.
func (s *store) failLocked(err error) {
	s.degraded, s.spErr = true, err
	s.retryAt = s.now().Add(spoolRetry)
	s.log.Error("spool cannot be written: keeping readings in memory until it can (they are lost if the agent stops)",
		"dir", s.opts.Dir, "err", err, "memory_limit_bytes", s.maxMem, "retry_in", spoolRetry.String())
}

// recoverLocked tries the spool again: opens it if it never opened, moves
// what memory holds into it, then recs, and reports whether recs are in
// the spool. With nothing to write nothing is learnt, so the state stays.
func (s *store) recoverLocked(recs []spool.Record) bool {
	s.retryAt = s.now().Add(spoolRetry)
	opened := false
	if s.sp == nil {
		sp, err := spool.Open(s.opts)
		if err != nil {
			s.spErr = err
			return false
		}
		s.sp, s.inc, s.rescued, opened = sp, sp.Incarnation(), 0, true
		s.log.Warn("spool opened at last", "dir", s.opts.Dir, "incarnation", s.inc)
		s.rebindLocked()
	}
	s.compactLocked()
	if len(s.mem) == 0 && len(recs) == 0 && !opened {
		return false
	}
	err := s.moveMemLocked()
	if err == nil && len(recs) > 0 {
		err = appendSplit(s.sp, recs)
	}
	if err != nil {
		if errors.Is(err, spool.ErrGone) {
			s.reincarnateLocked(err)
		}
		s.spErr = err
		return false
	}
	if s.spErr != nil {
		s.log.Warn("spool writable again: readings kept in memory moved to disk", "dir", s.opts.Dir, "still_in_memory", len(s.mem))
	}
	s.degraded, s.spErr = false, nil
	return len(recs) > 0
}

// moveMemLocked appends memory's records to the spool in groups, keeping
// only those the spool cannot take (numbered below what it holds), and
// hands it the loss reports memory kept.
func (s *store) moveMemLocked() error {
	s.compactLocked()
	last := s.sp.LastSeq()
	var stay []spool.Record
	var group []spool.Record
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		if err := appendSplit(s.sp, group); err != nil {
			return err
		}
		for _, r := range group {
			s.memBytes -= len(r.Data)
		}
		group = group[:0]
		return nil
	}
	for i, r := range s.mem {
		if r.Seq <= last {
			stay = append(stay, r)
			continue
		}
		group = append(group, r)
		if len(group) == maxGroup {
			if err := flush(); err != nil {
				s.mem = append(stay, s.mem[i+1-len(group):]...)
				return err
			}
		}
	}
	if err := flush(); err != nil {
		s.mem = append(stay, s.mem[len(s.mem)-len(group):]...)
		return err
	}
	s.mem = stay
	if len(s.dropped) > 0 {
		if err := s.sp.AddDropped(s.dropped...); err != nil {
			return err
		}
		s.dropped = nil
	}
	return nil
}

// reincarnateLocked replaces a spool that was deleted while in use: a new
// one is created in its place and what the old one held is moved there
// (read back from its files, which stay readable while open), keeping the
// incarnation it was numbered under. What cannot be read back is
// reported lost ("spool deleted").
func (s *store) reincarnateLocked(cause error) {
	old, oldInc, oldLast := s.sp, s.inc, s.sp.LastSeq()
	s.log.Error("the spool was deleted while the agent ran: recreating it and moving what it held there",
		"dir", s.opts.Dir, "err", cause)
	// Read back first: Salvage closes the old spool, and with it its
	// lock, which the new one takes.
	var carried []spool.Record
	lost, err := old.Salvage(func(r spool.Record) error {
		r.Data = tagged(r.Data, oldInc, false)
		carried = append(carried, r)
		return nil
	})
	if err != nil {
		s.log.Error("reading back the deleted spool", "err", err)
	}
	// What is left of it by name (only some files were deleted) was
	// read back: a new spool must not adopt it.
	if err := spool.Discard(s.opts.Dir, s.opts.FS); err != nil {
		s.log.Error("removing what is left of the deleted spool", "dir", s.opts.Dir, "err", err)
	}
	s.sp, s.inc, s.rescued = nil, "", 0
	fresh, err := spool.Open(s.opts)
	if err != nil {
		s.spErr, s.degraded = err, true
		s.retryAt = s.now().Add(spoolRetry)
	} else {
		s.sp, s.inc, s.degraded, s.spErr = fresh, fresh.Incarnation(), false, nil
	}
	moved, inMem := 0, 0
	for len(carried) > 0 {
		group := carried[:min(len(carried), maxGroup)]
		carried = carried[len(group):]
		if s.sp != nil && !s.degraded {
			if err := appendSplit(s.sp, group); err == nil {
				moved += len(group)
				continue
			} else {
				s.failLocked(err)
			}
		}
		inMem += len(group)
		s.addMemLocked(group)
	}
	s.dropped = append(s.dropped, lost...)
	var n uint64
	for _, d := range lost {
		if d.Reason == spool.DropDeleted {
			n += d.Count
		}
	}
	if s.sp != nil {
		s.rebindLocked(oldLast)
		if !s.degraded {
			if err := s.moveMemLocked(); err != nil {
				s.failLocked(err)
			}
		}
	}
	s.log.Warn("spool recreated", "dir", s.opts.Dir, "incarnation", s.inc, "old_incarnation", oldInc,
		"moved_to_disk", moved, "kept_in_memory", inMem, "lost", n)
}

// appendSplit appends recs, in smaller groups when a group does not fit
// in a segment (a spool made small by a nearly full disk).
func appendSplit(sp *spool.Spool, recs []spool.Record) error {
	err := sp.Append(recs)
	if errors.Is(err, spool.ErrTooLarge) && len(recs) > 1 {
		h := len(recs) / 2
		if err = appendSplit(sp, recs[:h]); err == nil {
			err = appendSplit(sp, recs[h:])
		}
	}
	return err
}

// rebindLocked moves the sequence counter to the spool now open.
func (s *store) rebindLocked(lasts ...uint64) {
	if s.rebind == nil {
		return
	}
	last := s.sp.LastSeq()
	for _, l := range lasts {
		last = max(last, l)
	}
	if n := len(s.mem); n > 0 {
		last = max(last, s.mem[n-1].Seq)
	}
	if err := s.rebind(s.inc, last); err != nil {
		s.log.Error("cannot write the sequence counter for the new spool", "err", err)
	}
}

// rescueUnsyncedLocked moves the records the spool could not make durable
// to memory, under the volatile incarnation, and acknowledges them in the
// spool. A disk whose sync fails may lose them when it is checked and
// repaired, as in a power cut, and a later run would then number other
// readings with their seqs; published from memory under an incarnation
// of their own, they stay unique, and are not published twice.
func (s *store) rescueUnsyncedLocked(cause error) {
	from := max(s.sp.SyncedSeq(), s.rescued)
	last := s.sp.LastSeq()
	if last <= from {
		return
	}
	var recs []spool.Record
	if err := s.sp.Pending(from, 0, func(r spool.Record) bool {
		recs = append(recs, r)
		return true
	}); err != nil {
		s.log.Error("reading back the records the spool could not sync", "err", err)
		return
	}
	s.rescued = last
	if len(recs) == 0 {
		return
	}
	s.spErr = cause
	seqs := make([]uint64, len(recs))
	for i := range recs {
		seqs[i] = recs[i].Seq
		recs[i].Data = tagged(recs[i].Data, s.volatile, true)
	}
	s.sp.Ack(seqs...)
	s.addMemLocked(recs)
	s.log.Warn("the spool cannot make its newest readings durable: they are kept in memory and published from there under the volatile incarnation",
		"readings", len(recs), "seq_first", seqs[0], "seq_last", seqs[len(seqs)-1], "from_incarnation", s.inc,
		"incarnation", s.volatile, "dir", s.opts.Dir)
}
