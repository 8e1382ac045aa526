package reading

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/sensors"
)

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	ts := time.Date(2026, 11, 26, 13, 0, 0, 3_456_789, time.FixedZone("JST", 9*3600))
	tests := []Reading{
		{Seq: 1041, Sensor: "greenhouse", Time: ts, Values: sensors.Values{"temperature_c": 21.43, "humidity_pct": 40.2, "pressure_hpa": 1013.1}},
		{Seq: 1, Sensor: `we"ird\name<>&`, Time: ts, Values: sensors.Values{"level": 1}},
		{Seq: math.MaxUint64, Sensor: "x\n\t\x01", Time: ts, Values: sensors.Values{}},
		{Seq: 2, Sensor: "tiny", Time: ts, Values: sensors.Values{"a": 1e-9, "b": -3.5e21, "c": 0}},
	}
	for _, r := range tests {
		b := r.AppendJSON(nil)
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: invalid JSON: %v", b, err)
		}
		if got["sensor"] != r.Sensor {
			t.Errorf("sensor = %q, want %q", got["sensor"], r.Sensor)
		}
		if got["time"] != "2026-11-26T04:00:00.003Z" {
			t.Errorf("time = %v, want UTC with milliseconds", got["time"])
		}
		want := map[string]any{}
		for k, v := range r.Values {
			want[k] = v
		}
		if !reflect.DeepEqual(got["values"], want) {
			t.Errorf("values = %v, want %v", got["values"], want)
		}
		var seq struct{ Seq uint64 }
		json.Unmarshal(b, &seq)
		if seq.Seq != r.Seq {
			t.Errorf("seq = %d, want %d", seq.Seq, r.Seq)
		}
	}
}

func TestAppendJSONWithDevice(t *testing.T) {
	r := Reading{Seq: 7, Sensor: "s", Time: time.Unix(0, 0), Values: sensors.Values{"level": 0}}
	got := string(r.AppendJSONWithDevice(nil, "pi-1"))
	want := `{"device":"pi-1","seq":7,"sensor":"s","time":"1970-01-01T00:00:00.000Z","values":{"level":0}}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestAppendJSONHealth(t *testing.T) {
	r := Reading{Seq: 9, Sensor: "s", Type: Health, Time: time.Unix(0, 0),
		Values: sensors.Values{"healthy": 0, "consecutive_errors": 3}, Error: `read: "remote I/O error"`,
		LastSuccess: time.Unix(0, 0).Add(-time.Minute)}
	got := string(r.AppendJSON(nil))
	want := `{"seq":9,"sensor":"s","type":"health","time":"1970-01-01T00:00:00.000Z","values":{"consecutive_errors":3,"healthy":0},"error":"read: \"remote I/O error\"","last_success":"1969-12-31T23:59:00.000Z"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestAppendJSONClockUnsynced(t *testing.T) {
	r := Reading{Seq: 3, Sensor: "s", Time: time.Unix(0, 0), Values: sensors.Values{"level": 1}, ClockUnsynced: true}
	want := `{"seq":3,"sensor":"s","time":"1970-01-01T00:00:00.000Z","clock_synced":false,"values":{"level":1}}`
	if got := string(r.AppendJSON(nil)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	want = `{"device":"pi-1","seq":3,"sensor":"s","time":"1970-01-01T00:00:00.000Z","clock_synced":false,"values":{"level":1}}`
	if got := string(r.AppendJSONWithDevice(nil, "pi-1")); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var decoded struct {
		ClockSynced *bool `json:"clock_synced"`
	}
	if err := json.Unmarshal(r.AppendJSON(nil), &decoded); err != nil || decoded.ClockSynced == nil || *decoded.ClockSynced {
		t.Errorf("decoded clock_synced = %v, %v; want false", decoded.ClockSynced, err)
	}
	// Synchronised: the field is absent (TestAppendJSONWithDevice and
	// TestAppendJSONHealth pin the exact bytes).
	r.ClockUnsynced = false
	if got := string(r.AppendJSON(nil)); strings.Contains(got, "clock_synced") {
		t.Errorf("synchronised reading carries the flag: %s", got)
	}
}

func TestAppendJSONNaN(t *testing.T) {
	r := Reading{Seq: 1, Sensor: "s", Time: time.Unix(0, 0), Values: sensors.Values{"x": math.NaN()}}
	if err := json.Unmarshal(r.AppendJSON(nil), new(any)); err != nil {
		t.Fatal(err)
	}
}

func TestSequencerResume(t *testing.T) {
	// Each step reopens the sequencer, takes n numbers and reports the
	// spool's last seq as `last` (what survived); want is the first number
	// handed out.
	type step struct {
		boot  string
		spool string
		last  int64 // -1 = the last number handed out (nothing lost)
		n     int
		want  uint64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"fresh start", []step{{"b1", "s1", -1, 3, 1}}},
		{"same boot: no gap", []step{{"b1", "s1", -1, 25, 1}, {"b1", "s1", -1, 5, 26}, {"b1", "s1", -1, 1, 31}}},
		{"same boot, lease crossed", []step{{"b1", "s1", -1, 10, 1}, {"b1", "s1", -1, 1, 11}}},
		{"same boot, nothing taken since open", []step{{"b1", "s1", -1, 3, 1}, {"b1", "s1", -1, 0, 0}, {"b1", "s1", -1, 1, 4}}},
		{"new boot: resume at lease end", []step{{"b1", "s1", -1, 3, 1}, {"b2", "s1", 2, 1, 11}}},
		{"new boot, spool ahead of lease", []step{{"b1", "s1", -1, 3, 1}, {"b2", "s1", 50, 1, 51}}},
		{"unknown boot id is a new boot", []step{{"", "s1", -1, 3, 1}, {"", "s1", 3, 1, 11}}},
		{"spool wiped in the first lease", []step{{"b1", "s1", -1, 3, 1}, {"b1", "s2", 0, 1, 11}}},
		{"spool wiped later", []step{{"b1", "s1", -1, 25, 1}, {"b1", "s2", 0, 1, 31}}},
		{"no spool: lease end", []step{{"b1", "", -1, 3, 1}, {"b1", "", 0, 1, 11}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var handed uint64
			for i, st := range tt.steps {
				last := uint64(st.last)
				if st.last < 0 {
					last = handed
				}
				s, err := OpenSequencer(SeqOptions{Dir: dir, Lease: 10, Boot: st.boot, Spool: st.spool, Last: last})
				if err != nil {
					t.Fatal(err)
				}
				for j := range st.n {
					n, durable := s.Next()
					if !durable {
						t.Fatalf("seq %d not durable: %v", n, s.Err())
					}
					if j == 0 && n != st.want {
						t.Errorf("step %d: first seq %d, want %d", i, n, st.want)
					}
					if n <= handed && st.boot != tt.steps[max(i-1, 0)].boot {
						t.Errorf("step %d: seq %d repeats after a reboot (had %d)", i, n, handed)
					}
					handed = n
				}
			}
		})
	}
}

func TestSequencerNeverRepeats(t *testing.T) {
	dir := t.TempDir()
	var last uint64
	for run := range 4 {
		s, err := OpenSequencer(SeqOptions{Dir: dir, Lease: 10, Last: last})
		if err != nil {
			t.Fatal(err)
		}
		for range 25 { // crosses lease boundaries
			n, durable := s.Next()
			if !durable {
				t.Fatalf("seq %d not durable: %v", n, s.Err())
			}
			if n <= last {
				t.Fatalf("run %d: seq %d after %d", run, n, last)
			}
			last = n
		}
		// "Crash": drop s without any shutdown step.
	}
}

func TestSequencerCorruptFileFallsBackToBackup(t *testing.T) {
	dir := t.TempDir()
	o := SeqOptions{Dir: dir, Lease: 10, Boot: "b", Spool: "s"}
	s, _ := OpenSequencer(o)
	var last uint64
	for range 15 {
		last, _ = s.Next()
	}
	if err := os.WriteFile(filepath.Join(dir, "seq"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenSequencer(o)
	if err != nil {
		t.Fatalf("corrupt seq file with a sound backup: %v", err)
	}
	n, durable := s2.Next()
	if n <= last || !durable {
		t.Fatalf("seq %d (durable %t) after %d", n, durable, last)
	}
	// Damaged again: the backup written by the recovery is sound.
	os.WriteFile(filepath.Join(dir, "seq"), []byte("garbage"), 0o600)
	if _, err := OpenSequencer(o); err != nil {
		t.Fatalf("backup after a recovery: %v", err)
	}
}

// Unknown leases (both files damaged, or unreadable): numbers keep coming,
// marked not durable, with an error that says what to do; a new spool
// incarnation (Rebind) makes them durable again.
func TestSequencerBothCorrupt(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "seq"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "seq.prev"), []byte("y"), 0o600)
	clk := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s, err := OpenSequencer(SeqOptions{Dir: dir, Lease: 10, Boot: "b", Spool: "s", Now: func() time.Time { return clk }})
	if err == nil || !strings.Contains(err.Error(), "remove both") {
		t.Fatalf("want an error explaining the corrupt seq files, got %v", err)
	}
	clk = clk.Add(time.Hour) // retries do not help: the start is unknown
	if n, durable := s.Next(); durable || n != 1 {
		t.Fatalf("Next = %d, %t", n, durable)
	}
	if err := s.Rebind("s2", 50); err != nil {
		t.Fatal(err)
	}
	if n, durable := s.Next(); !durable || n != 51 {
		t.Fatalf("after Rebind: Next = %d, %t", n, durable)
	}
}

// A state dir that cannot be written (read-only remount, full disk): the
// agent still gets numbers, not durable, and durable ones again once the
// lease can be written (tried every RetryInterval).
func TestSequencerUnwritableDir(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	state := filepath.Join(blocker, "state") // cannot exist while blocker is a file
	clk := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s, err := OpenSequencer(SeqOptions{Dir: state, Lease: 10, Boot: "b", Spool: "s", Last: 7, Now: func() time.Time { return clk }})
	if err == nil || !strings.Contains(err.Error(), state) {
		t.Fatalf("want an error naming the state dir, got %v", err)
	}
	for want := uint64(8); want < 30; want++ { // past the in-memory lease
		if n, durable := s.Next(); n != want || durable {
			t.Fatalf("Next = %d, %t; want %d, false", n, durable, want)
		}
	}
	os.Remove(blocker)
	if _, durable := s.Next(); durable {
		t.Fatal("durable before the retry interval passed")
	}
	clk = clk.Add(RetryInterval)
	n, durable := s.Next()
	if !durable || n != 31 || s.Err() != nil {
		t.Fatalf("after the disk came back: Next = %d, %t (%v)", n, durable, s.Err())
	}
	// What was handed out is under the lease now written.
	s2, _ := OpenSequencer(SeqOptions{Dir: state, Lease: 10, Boot: "b2", Spool: "s"})
	if n, _ := s2.Next(); n <= 31 {
		t.Fatalf("after a reboot: %d repeats", n)
	}
}

// The filesystem mounted again within one boot (a card error, fsck, a new
// mount): what the page cache held may be gone as after a power cut, so
// numbering resumes at the lease end even though the boot id is the same.
func TestSequencerRemountedFilesystem(t *testing.T) {
	dir := t.TempDir()
	if MountID(dir) == 0 {
		t.Skip("no /proc/self/mountinfo here")
	}
	o := SeqOptions{Dir: dir, Lease: 10, Boot: "b", Spool: "s"}
	s, _ := OpenSequencer(o)
	for range 3 {
		s.Next()
	}
	path := filepath.Join(dir, "seq")
	b, err := os.ReadFile(path)
	if err != nil || len(b) != seqFileLen {
		t.Fatalf("seq file: %d bytes, %v", len(b), err)
	}
	// Same boot, same mount, the spool lost its records: no gap (the
	// page cache is trusted).
	if n, _ := mustOpen(t, o).Next(); n != 1 {
		t.Fatalf("same mount: first seq %d, want 1", n)
	}
	off := 12 + bootIDLen + incLen
	binary.LittleEndian.PutUint64(b[off:], binary.LittleEndian.Uint64(b[off:])+1)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	os.WriteFile(path, b, 0o600)
	if n, _ := mustOpen(t, o).Next(); n < 11 {
		t.Fatalf("filesystem mounted again: first seq %d, want the lease end (>= 11)", n)
	}
}

// A SEQ3 file (before the mount id) is read as before.
func TestSequencerReadsSEQ3(t *testing.T) {
	dir := t.TempDir()
	b := make([]byte, seqFileLenV3)
	copy(b, "SEQ3")
	binary.LittleEndian.PutUint64(b[4:], 500)
	copy(b[12:], "b")
	copy(b[12+bootIDLen:], "s")
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	os.WriteFile(filepath.Join(dir, "seq"), b, 0o600)
	// Same boot and spool: continues after the spool's last record.
	if n, durable := mustOpen(t, SeqOptions{Dir: dir, Lease: 10, Boot: "b", Spool: "s", Last: 495}).Next(); n != 496 || !durable {
		t.Fatalf("Next = %d, %t", n, durable)
	}
	// A new boot: the lease end.
	if n, _ := mustOpen(t, SeqOptions{Dir: dir, Lease: 10, Boot: "b2", Spool: "s", Last: 495}).Next(); n < 500 {
		t.Fatalf("new boot: %d", n)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/mnt/a\040b`: "/mnt/a b", `/plain`: "/plain", `/x\134y`: `/x\y`, `/bad\09`: `/bad\09`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
	if MountID("/") == 0 {
		t.Log("no mount id for / (not Linux?)")
	}
}

func mustOpen(t *testing.T, o SeqOptions) *Sequencer {
	t.Helper()
	s, err := OpenSequencer(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
