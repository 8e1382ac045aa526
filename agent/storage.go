package agent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/reading"
	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// storage is what a reload hands from one agent to the next: the lock on
// state_dir, the store (spool and memory) and the sequence counter.
type storage struct {
	lock     io.Closer
	store    *store
	seq      *reading.Sequencer
	stateDir string
	spoolDir string
}

// carried is what memory held when the storage could not be handed over
// (a reload moved state_dir or spool.dir).
type carried struct {
	recs    []spool.Record
	dropped []spool.DroppedRange
}

// LockName is the file in state_dir an agent holds an exclusive lock on:
// two agents on one state directory would hand out the same numbers.
// (The spool's own lock is "lock" in spool.dir, which may be state_dir.)
const LockName = "agent.lock"

func (a *Agent) provisionStorage() error {
	if prev := a.opts.Previous; prev != nil {
		if st := prev.st; st != nil && st.stateDir == a.cfg.StateDir && st.spoolDir == a.cfg.Spool.Dir {
			a.st, prev.st = st, nil
			st.store.reconfigure(int(a.cfg.Publish.QueueBytes), int64(a.cfg.Spool.MaxBytes))
			return nil
		}
		if prev.st != nil {
			prev.carry = prev.st.release()
			prev.st = nil
		}
		a.carry, prev.carry = prev.carry, carried{}
	}
	dir := a.cfg.StateDir
	_ = os.MkdirAll(dir, 0o750) // the lock wants it; the sequencer reports failures
	lock, err := spool.LockFile(filepath.Join(dir, LockName))
	if errors.Is(err, spool.ErrLocked) {
		return fmt.Errorf("state_dir %s: %w: another sensor-agent runs on it; stop it first (systemctl stop sensor-agent), or give this one its own state_dir", dir, err)
	}
	if err != nil {
		a.log.Warn("cannot lock state_dir: a second agent on it would not be noticed", "dir", dir, "err", err)
		lock = nil
	}
	sc := a.cfg.Spool
	st, err := openStore(spool.Options{Dir: sc.Dir, MaxBytes: int64(sc.MaxBytes), SyncInterval: sc.SyncInterval.D(),
		FS: a.opts.SpoolFS, Logger: a.log.With("module", "spool")}, int(a.cfg.Publish.QueueBytes), a.log.With("module", "store"), time.Now)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return err
	}
	st.adopt(a.carry)
	a.carry = carried{}
	seq, err := reading.OpenSequencer(reading.SeqOptions{Dir: dir, Boot: a.opts.BootID(), Spool: st.Incarnation(), Last: st.LastSeq()})
	if err != nil {
		a.log.Error(`cannot write the sequence counter: readings carry a volatile incarnation ("volatile":true) until it can be written, so their numbers stay unique`,
			"err", err)
	}
	st.rebind = seq.Rebind
	a.st = &storage{lock: lock, store: st, seq: seq, stateDir: dir, spoolDir: sc.Dir}
	if lock == nil {
		a.st.lock = nil
	}
	return nil
}

// release closes the storage for a reload that cannot keep it, handing
// over what memory holds.
func (st *storage) release() carried {
	c := st.store.release()
	if st.lock != nil {
		st.lock.Close()
	}
	return c
}

func (st *storage) close(log *slog.Logger) {
	if err := st.store.Close(); err != nil {
		log.Error("closing the spool", "err", err)
	}
	if st.lock != nil {
		st.lock.Close()
	}
}
