package clock

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeKernel is an adjtimex that counts calls.
type fakeKernel struct {
	state, status int
	err           error
	calls         int
}

func (k *fakeKernel) adjtimex() (int, int, error) {
	k.calls++
	return k.state, k.status, k.err
}

// fakeRoot returns a root with or without the timesyncd file.
func fakeRoot(t *testing.T, synchronized bool) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "run", "systemd", "timesync")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if synchronized {
		touch(t, root)
	}
	return root
}

func touch(t *testing.T, root string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, TimesyncFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSynced(t *testing.T) {
	errPerm := errors.New("adjtimex: " + syscall.EPERM.Error())
	tests := []struct {
		name   string
		file   bool
		kernel fakeKernel
		want   bool
		logged string // "" = nothing
	}{
		{"timesyncd file", true, fakeKernel{state: TimeError, status: StaUnsync}, true, ""},
		{"timesyncd file, adjtimex blocked", true, fakeKernel{err: errPerm}, true, ""},
		{"kernel synchronised (chrony, ntpd)", false, fakeKernel{state: 0, status: 0x2001}, true, ""},
		{"kernel STA_UNSYNC", false, fakeKernel{state: 0, status: StaUnsync | 0x1}, false, ""},
		{"kernel TIME_ERROR", false, fakeKernel{state: TimeError, status: 0}, false, ""},
		{"kernel TIME_ERROR and STA_UNSYNC (boot)", false, fakeKernel{state: TimeError, status: StaUnsync}, false, ""},
		{"leap second pending is synchronised", false, fakeKernel{state: 1, status: 0x10}, true, ""},
		{"adjtimex blocked, no file", false, fakeKernel{err: errPerm}, false, "cannot tell whether the system clock is synchronised"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			k := tt.kernel
			s := New(Options{Root: fakeRoot(t, tt.file), Adjtimex: k.adjtimex,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if got := s.Synced(); got != tt.want {
				t.Errorf("Synced() = %v, want %v", got, tt.want)
			}
			if tt.file && k.calls != 0 {
				t.Errorf("adjtimex called %d times although timesyncd said synchronised", k.calls)
			}
			switch {
			case tt.logged == "" && logs.Len() > 0:
				t.Errorf("unexpected log: %s", logs.String())
			case tt.logged != "" && !strings.Contains(logs.String(), tt.logged):
				t.Errorf("log %q lacks %q", logs.String(), tt.logged)
			}
		})
	}
}

type fakeNow struct{ t time.Time }

func (n *fakeNow) now() time.Time      { return n.t }
func (n *fakeNow) add(d time.Duration) { n.t = n.t.Add(d) }

func TestSyncedCaches(t *testing.T) {
	root := fakeRoot(t, false)
	k := &fakeKernel{state: TimeError, status: StaUnsync}
	now := &fakeNow{t: time.Unix(0, 0)} // a Pi without RTC at boot
	var logs bytes.Buffer
	s := New(Options{Root: root, Adjtimex: k.adjtimex, Now: now.now,
		Recheck: 2 * time.Second, RecheckSynced: time.Minute,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	want := func(step string, synced bool, calls int) {
		t.Helper()
		if got := s.Synced(); got != synced {
			t.Fatalf("%s: Synced() = %v, want %v", step, got, synced)
		}
		if k.calls != calls {
			t.Fatalf("%s: adjtimex called %d times, want %d", step, k.calls, calls)
		}
	}
	want("boot", false, 1)
	now.add(time.Second)
	want("unsynchronised answer cached", false, 1)
	now.add(time.Second)
	want("re-checked after Recheck", false, 2)

	// NTP answers; the kernel says so (chrony) and, later, timesyncd's
	// file appears. The clock jumps forward by decades: caching must not
	// care.
	k.state, k.status = 0, 0
	now.t = time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)
	want("synchronised", true, 3)
	k.state, k.status = TimeError, StaUnsync // e.g. ntpd restarted
	now.add(59 * time.Second)
	want("synchronised answer kept until re-checked", true, 3)
	now.add(time.Second)
	want("re-checked after RecheckSynced", false, 4)

	touch(t, root)
	now.add(2 * time.Second)
	want("timesyncd file", true, 4)

	// A failing adjtimex is said once, however often it fails.
	if err := os.Remove(filepath.Join(root, TimesyncFile)); err != nil {
		t.Fatal(err)
	}
	k.err = errors.New("adjtimex: operation not permitted")
	for i := range 3 {
		now.add(time.Minute)
		want("adjtimex fails", false, 5+i)
	}
	if n := strings.Count(logs.String(), "cannot tell"); n != 1 {
		t.Errorf("logged the failure %d times, want once:\n%s", n, logs.String())
	}
}

func TestSystemSmoke(t *testing.T) {
	// The real machine: whatever the answer, it must come without error
	// logs where adjtimex is allowed.
	var logs bytes.Buffer
	s := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Logf("this machine's clock synchronised: %v", s.Synced())
	if logs.Len() > 0 {
		t.Logf("log: %s", logs.String())
	}
}

func TestKernelSynced(t *testing.T) {
	if !KernelSynced(0, 0) || KernelSynced(TimeError, 0) || KernelSynced(0, StaUnsync) {
		t.Fatal("KernelSynced misreads adjtimex")
	}
}
