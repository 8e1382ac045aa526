//go:build !linux

package spool

import (
	"errors"
	"os"
)

// datasync falls back to fsync where fdatasync is not available.
func datasync(f *os.File) error { return f.Sync() }

// The agent runs on Linux; elsewhere (a developer's machine) the spool
// works without a lock, a free-space check or deletion detection.

func flock(*os.File) error                    { return nil }
func available(string) (int64, error)         { return 0, errors.New("free space unknown on this system") }
func sameInode(a, b os.FileInfo) (bool, bool) { return false, false }
func unlinked(os.FileInfo) bool               { return false }
