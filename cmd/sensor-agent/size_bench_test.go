package main

import (
	"os"
	"testing"
)

// BenchmarkBinarySize builds the armv6 binary (every Pi) the way a
// release does and reports its size in MB (issue 11: at most 12).
func BenchmarkBinarySize(b *testing.B) {
	var out string
	for b.Loop() {
		out = buildRelease(b, "GOOS=linux", "GOARCH=arm", "GOARM=6")
	}
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/1e6, "armv6-MB")
}
