package shadow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// DesiredFile keeps, in state_dir, the desired state last applied, so a
// device that reboots offline starts with it.
const DesiredFile = "shadow-desired.json"

// Saved is the desired state last applied and its shadow version.
type Saved struct {
	Version int64          `json:"version"`
	Desired map[string]any `json:"desired"`
}

// Save writes s to dir/DesiredFile, atomically: a power cut leaves the
// old or the new one.
func Save(dir string, s Saved) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("shadow: save desired state: %w", err)
	}
	if err := spool.WriteFileAtomic(spool.OSFS{}, dir, DesiredFile, b); err != nil {
		return fmt.Errorf("shadow: save desired state in %s: %w", filepath.Join(dir, DesiredFile), err)
	}
	return nil
}

// Load reads dir/DesiredFile; none saved is a zero Saved and no error.
func Load(dir string) (Saved, error) {
	var s Saved
	path := filepath.Join(dir, DesiredFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("shadow: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return Saved{}, fmt.Errorf("shadow: %s is damaged (%v): remove it to start from the config file alone; the next poll fetches desired state again", path, err)
	}
	return s, nil
}
