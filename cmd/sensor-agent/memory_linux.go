package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// releaseBinaryPages unmaps from this process the pages of its own
// executable's read-only segments (code, read-only data, the runtime's
// function tables), leaving them in the page cache.
//
// Why: start-up (package initialisers, config parsing, certificate and
// system-root parsing, periph's host init, spool recovery, the first TLS
// handshake) touches code all over the binary, and the kernel maps 64 KiB
// around every page fault (fault-around), so after start-up nearly the
// whole ~9 MiB binary counts in the agent's RSS although the steady state
// runs a fraction of it. Dropping the mappings once start-up is over lets
// the steady state fault back in only what it runs (about 6 MiB); the
// rest stays cached and costs a minor fault if ever needed again.
//
// It is safe: these mappings are private, read-only and never written,
// so MADV_DONTNEED only drops page-table entries and a later access reads
// the same bytes back from the file (still open through the mapping even
// if a package upgrade has replaced it on disk). Writable mappings (the
// data segment, the heap) are never touched.
func releaseBinaryPages() error {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode path
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[4] != strconv.FormatUint(st.Ino, 10) || strings.ContainsAny(fs[1], "ws") {
			continue
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			return fmt.Errorf("/proc/self/maps: bad line %q", sc.Text())
		}
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED); e != 0 {
			return fmt.Errorf("madvise %s: %w", fs[0], e)
		}
	}
	return sc.Err()
}
