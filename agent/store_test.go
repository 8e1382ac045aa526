package agent

import (
	"reflect"
	"testing"

	"github.com/sensor-agent/sensor-agent/agent/spool"
)

func TestWithoutSeqs(t *testing.T) {
	r := func(first, last uint64) spool.DroppedRange {
		return spool.DroppedRange{First: first, Last: last, Count: last - first + 1, Reason: spool.DropMemory}
	}
	tests := []struct {
		name   string
		ranges []spool.DroppedRange
		seqs   []uint64
		want   []spool.DroppedRange
	}{
		{"none", []spool.DroppedRange{r(1, 5)}, []uint64{9}, []spool.DroppedRange{r(1, 5)}},
		{"middle", []spool.DroppedRange{r(1, 5)}, []uint64{3}, []spool.DroppedRange{r(1, 2), r(4, 5)}},
		{"ends", []spool.DroppedRange{r(1, 5)}, []uint64{5, 1}, []spool.DroppedRange{r(2, 4)}},
		{"all", []spool.DroppedRange{r(1, 2)}, []uint64{1, 2}, nil},
		{"two ranges", []spool.DroppedRange{r(1, 3), r(10, 12)}, []uint64{2, 11, 20}, []spool.DroppedRange{r(1, 1), r(3, 3), r(10, 10), r(12, 12)}},
		{"huge range untouched", []spool.DroppedRange{{First: 1, Last: 1 << 40, Count: 7, Reason: spool.DropCorrupt}}, []uint64{1<<40 + 1},
			[]spool.DroppedRange{{First: 1, Last: 1 << 40, Count: 7, Reason: spool.DropCorrupt}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withoutSeqs(tt.ranges, "", tt.seqs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
