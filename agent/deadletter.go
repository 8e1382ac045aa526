package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
)

// DeadLetterFile is where messages AWS rejected for good are kept, one
// JSON object per line, in the spool directory.
const DeadLetterFile = "dead-letter.jsonl"

// DeadLetter is one line of the dead-letter file.
type DeadLetter struct {
	Time    time.Time       `json:"time"`
	Topic   string          `json:"topic"`
	Seqs    []uint64        `json:"seqs"`
	Status  int             `json:"status,omitempty"`
	Reason  string          `json:"reason"`
	Payload json.RawMessage `json:"payload"`
}

// deadLetter keeps a permanently rejected message with the reason, so
// nothing is dropped silently; the readings are then acknowledged.
func (a *Agent) deadLetter(topic string, seqs []uint64, payload []byte, cause error) {
	a.deadLettered.Add(int64(len(seqs)))
	dl := DeadLetter{Time: time.Now().UTC(), Topic: topic, Seqs: seqs, Reason: cause.Error(), Payload: payload}
	var pe *publisher.Error
	if errors.As(cause, &pe) {
		dl.Status = pe.Status
	}
	if !json.Valid(payload) {
		dl.Payload, _ = json.Marshal(string(payload))
	}
	line, _ := json.Marshal(dl)
	path := filepath.Join(a.cfg.Spool.Dir, DeadLetterFile)
	err := appendLine(path, line)
	if err != nil {
		a.log.Error("message rejected permanently and the dead-letter file cannot be written: readings lost",
			"topic", topic, "seq_first", seqs[0], "seq_last", seqs[len(seqs)-1], "reason", cause, "file_err", err)
		return
	}
	a.log.Error("message rejected permanently: kept in the dead-letter file", "file", path,
		"topic", topic, "seq_first", seqs[0], "seq_last", seqs[len(seqs)-1], "readings", len(seqs), "reason", cause)
}

func appendLine(path string, line []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync: %w", err)
	}
	return f.Close()
}
