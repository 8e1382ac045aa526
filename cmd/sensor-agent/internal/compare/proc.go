//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// procSample is what /proc says about a process at one moment.
type procSample struct {
	ticks     uint64 // utime+stime, clock ticks (USER_HZ), dead threads included
	schedNS   uint64 // Σ /proc/PID/task/*/schedstat run time, ns (live threads)
	switches  uint64 // Σ voluntary+nonvoluntary context switches of live threads
	threads   int
	rssKiB    uint64
	hwmKiB    uint64
	taskCount int
}

// parseStat returns utime and stime (fields 14 and 15) of a
// /proc/PID/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(line string) (utime, stime uint64, err error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("stat line without ')': %.60q", line)
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("stat line has %d fields after the name, want ≥ 13", len(f))
	}
	if utime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("utime: %w", err)
	}
	if stime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stime: %w", err)
	}
	return utime, stime, nil
}

// parseStatus returns the numeric fields of a /proc/PID/status file that
// the harness uses (sizes in kB as printed).
func parseStatus(text string) (map[string]uint64, error) {
	want := map[string]bool{"VmRSS": true, "VmHWM": true, "Threads": true,
		"voluntary_ctxt_switches": true, "nonvoluntary_ctxt_switches": true}
	out := make(map[string]uint64)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !want[k] {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return nil, fmt.Errorf("status %s: no value", k)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("status %s: %w", k, err)
		}
		out[k] = n
	}
	return out, sc.Err()
}

// parseSchedstat returns the first field of /proc/PID/task/TID/schedstat:
// time spent on the CPU, in nanoseconds.
func parseSchedstat(text string) (uint64, error) {
	f := strings.Fields(text)
	if len(f) == 0 {
		return 0, fmt.Errorf("empty schedstat")
	}
	return strconv.ParseUint(f[0], 10, 64)
}

// sample reads /proc for pid and all its threads.
func sample(pid int) (procSample, error) {
	var s procSample
	dir := fmt.Sprintf("/proc/%d", pid)
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, err
	}
	ut, st, err := parseStat(string(b))
	if err != nil {
		return s, err
	}
	s.ticks = ut + st
	if b, err = os.ReadFile(dir + "/status"); err != nil {
		return s, err
	}
	m, err := parseStatus(string(b))
	if err != nil {
		return s, err
	}
	s.rssKiB, s.hwmKiB, s.threads = m["VmRSS"], m["VmHWM"], int(m["Threads"])
	tasks, err := filepath.Glob(dir + "/task/*")
	if err != nil {
		return s, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t + "/status")
		if err != nil {
			continue // the thread exited meanwhile
		}
		m, err := parseStatus(string(b))
		if err != nil {
			return s, err
		}
		s.switches += m["voluntary_ctxt_switches"] + m["nonvoluntary_ctxt_switches"]
		if b, err := os.ReadFile(t + "/schedstat"); err == nil {
			if ns, err := parseSchedstat(string(b)); err == nil {
				s.schedNS += ns
			}
		}
		s.taskCount++
	}
	return s, nil
}

// clockTicks is USER_HZ, the unit of utime and stime: getconf's answer,
// else 100 (what Linux reports on every architecture a Pi or a PC uses).
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
}
