package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkBinarySize builds the armv6 binary (every Pi) the way a
// release does and reports its size in MB (issue 11: at most 12).
func BenchmarkBinarySize(b *testing.B) {
	out := filepath.Join(b.TempDir(), "sensor-agent-armv6")
	for b.Loop() {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=6")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, msg)
		}
	}
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/1e6, "armv6-MB")
}
