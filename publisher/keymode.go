package publisher

import (
	"fmt"
	"io/fs"
	"os"
)

// The key-permission rule, the one doctor, check and run apply. The
// packaged service reads its key as user sensor-agent, so the key is
// installed owned by root with group sensor-agent, mode 0640: readable by
// its owner and its group. Nobody else may read it, and the group may not
// change it. A key that breaks the rule still works: it is a warning,
// never a failure.

// KeyModeAllowed is the most a private key file's mode may allow.
const KeyModeAllowed fs.FileMode = 0o640

// KeyModeProblem says what is wrong with the permissions of the private
// key file at path, "" when nothing is (or the file cannot be looked at:
// loading it reports that).
func KeyModeProblem(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return keyModeProblem(path, fi.Mode().Perm())
}

func keyModeProblem(path string, perm fs.FileMode) string {
	if perm&^(KeyModeAllowed|0o100) == 0 {
		return ""
	}
	who := "other users can read it"
	if perm&0o007 == 0 {
		who = "its group can change it"
	}
	return fmt.Sprintf("private key %s has mode %04o: %s; run chown root:sensor-agent %s && chmod 0640 %s (readable by root and the service's group only)",
		path, perm, who, path, path)
}
