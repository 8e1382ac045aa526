package spool

// WithMinSegment lets tests use segments smaller than 64 KiB, so a few
// records are enough to rotate and fill a spool.
func WithMinSegment(o Options, n int64) Options {
	o.minSegment = n
	return o
}

// Internal limits, for tests that check them.
const (
	MaxCursorRanges = maxCursorRanges
	SegHeaderSize   = segHeaderSize
)

// SegName is the file name of the segment starting at first.
func SegName(first uint64) string { return segName(first) }
