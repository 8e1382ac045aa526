package publisher

import (
	"io/fs"
	"strings"
	"testing"
)

func TestKeyModeProblem(t *testing.T) {
	for _, tc := range []struct {
		perm fs.FileMode
		want string // "" = fine
	}{
		{0o600, ""}, {0o400, ""}, {0o640, ""}, {0o440, ""}, {0o700, ""},
		{0o644, "other users can read it"},
		{0o604, "other users can read it"},
		{0o660, "its group can change it"},
		{0o666, "other users can read it"},
	} {
		got := keyModeProblem("/etc/sensor-agent/private.pem.key", tc.perm)
		switch {
		case tc.want == "" && got != "":
			t.Errorf("mode %04o: %q, want no problem", tc.perm, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("mode %04o: %q, want it to say %q", tc.perm, got, tc.want)
		case tc.want != "" && (!strings.Contains(got, "chown root:sensor-agent /etc/sensor-agent/private.pem.key && chmod 0640 ") || strings.Contains(got, "chmod 600")):
			t.Errorf("mode %04o: %q does not give the 0640 root:sensor-agent fix", tc.perm, got)
		}
	}
}
