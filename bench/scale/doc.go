// Package scale holds the benchmark of what a rep's sync, a push, the
// coverage report and a backup cost as the embedded store grows: the same
// measures on a store of the large shape and on one a hundred times
// smaller, in the same run. It has no code of its own; see
// scale_bench_test.go and docs/benchmarks.md.
package scale
