//go:build !linux

package main

// releaseBinaryPages is Linux-only (memory_linux.go).
func releaseBinaryPages() error { return nil }
