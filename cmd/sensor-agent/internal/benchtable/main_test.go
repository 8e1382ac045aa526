package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	in := `goos: linux
BenchmarkAgentSteady     	       1	10000980944 ns/op	         0.4152 %core	        41.52 cpu-µs/reading	        86.30 ctxsw/s	       137.3 payload-B/reading	       100.0 readings/s	       144.8 wire-B/reading	         1.054 wire/payload
BenchmarkAgentSteady-2   	       1	10000980944 ns/op	         0.9 %core	        99 cpu-µs/reading
BenchmarkAgentIdle   	       1	10000332493 ns/op	         0.04 %core	       126.0 cpu-µs/reading	        23.70 ctxsw/s
BenchmarkRSS/steady_10x1Hz_target_12MiB           	       1	1000636954 ns/op	         0 %-of-a-core	         9.176 RSS-MiB	         4.684 anon-MiB	         4.492 file-MiB	         9.176 mean-RSS-MiB
BenchmarkAgentVsSeed 	      30	  33381925 ns/op	     24800 agent-readings/cpu-s	  850 seed-readings/cpu-s	  29.2 x-agent/seed
PASS
`
	var out bytes.Buffer
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| CPU per reading, 10 sensors × 10 Hz (whole agent) | 41.5 µs | ≤ 10 µs | no |", // the -2 line is ignored
		"| CPU, 10 sensors × 1 Hz at defaults | 0.04 % of a core | ≤ 0.05 % of a core | yes |",
		"| wake-ups, 10 sensors × 1 Hz at defaults | 23.7 context switches/s | ≤ 10 context switches/s | no |",
		"| wire bytes ÷ payload JSON, 10 × 10 Hz | 1.05 × | ≤ 1.1 × | yes |",
		"| readings per CPU-second against the article's approach | 29.2 × | ≥ 300 × | no |",
		"| steady RSS at defaults (10 × 1 Hz), mean | 9.18 MiB | ≤ 12 MiB | yes |",
		"| peak RSS draining 1M readings | not run (BenchmarkRSS/drain_1M_target_24MiB_60s) |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
}
