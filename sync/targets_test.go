package sync_test

import (
	"math/big"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fieldsync/fieldsync/sync"
)

func TestSplit(t *testing.T) {
	r := func(ws ...string) []*big.Rat {
		out := make([]*big.Rat, len(ws))
		for i, w := range ws {
			out[i], _ = new(big.Rat).SetString(w)
		}
		return out
	}
	even := r("1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1")
	tests := []struct {
		name  string
		total int64
		ws    []*big.Rat
		want  []int64
	}{
		{"even, no remainder", 18000000, even, []int64{1500000, 1500000, 1500000, 1500000, 1500000, 1500000, 1500000, 1500000, 1500000, 1500000, 1500000, 1500000}},
		{"even, remainder cents to the first months", 100, even, []int64{9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 8}},
		{"even, one cent", 1, even, []int64{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"zero", 0, even, make([]int64, 12)},
		{"weighted, largest remainders first", 7, r("0.5", "0.25", "0.25"), []int64{3, 2, 2}},
		{"weighted, ties to the earlier", 10, r("1", "1", "1"), []int64{4, 3, 3}},
		{"a zero weight gets nothing", 1001, r("1", "0", "1"), []int64{501, 0, 500}},
		// 1000000 / 17 per weight: floors 58823 (.529), 117647 (.058), 176470
		// (.588) add to 999995; the 5 cents go to December, then January to
		// April.
		{"seasonal", 1000000, r("1", "1", "1", "1", "1", "2", "2", "2", "1", "1", "1", "3"),
			[]int64{58824, 58824, 58824, 58824, 58823, 117647, 117647, 117647, 58823, 58823, 58823, 176471}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sync.Split(tt.total, tt.ws)
			assert.Equal(t, tt.want, got)
			var sum int64
			for _, g := range got {
				sum += g
			}
			assert.Equal(t, tt.total, sum, "the parts add up to the whole")
		})
	}
}
