package main

// The ledger accounts for every reading from outside the agent: what it
// says it stored (its debug "stored" lines, written after each group
// reached the spool or memory), what the emulator received, what messages
// reported lost ("dropped"), what was dead-lettered and what the agent
// said at exit it lost from memory. A reading in none of the last four is
// lost silently: the one thing the agent must never do.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// rkey identifies a reading: (incarnation, seq) within one device.
type rkey struct {
	inc string
	seq uint64
}

func (k rkey) String() string { return fmt.Sprintf("%.8s/%d", k.inc, k.seq) }

type lostRange struct {
	inc         string
	first, last uint64
}

type ledger struct {
	stored map[rkey]string // where: "spool" or "memory"
	// moved maps a stored reading to the incarnation it was published
	// under instead: unsynced records a failing disk could not keep go
	// to memory under the volatile incarnation (the agent logs it).
	moved      map[rkey]rkey
	delivered  map[rkey]int
	content    map[rkey]string // the reading's JSON as first delivered
	collisions []string        // one key, two different readings
	dropped    map[rkey]string // reason
	dead       map[rkey]bool
	lostAtExit []lostRange
	volatile   int // messages marked "volatile":true
}

func newLedger() *ledger {
	return &ledger{stored: map[rkey]string{}, moved: map[rkey]rkey{}, delivered: map[rkey]int{}, content: map[rkey]string{},
		dropped: map[rkey]string{}, dead: map[rkey]bool{}}
}

var (
	storedRE = regexp.MustCompile(`msg=stored .*?first=(\d+) last=(\d+) count=\d+ in=(\w+) incarnation=([0-9a-f]+)`)
	movedRE  = regexp.MustCompile(`msg="the spool cannot make its newest readings durable[^"]*" .*?seq_first=(\d+) seq_last=(\d+) from_incarnation=([0-9a-f]+) incarnation=([0-9a-f]+)`)
	lostRE   = regexp.MustCompile(`msg="readings held only in memory are lost now[^"]*" .*?readings=\d+ seq_first=(\d+) seq_last=(\d+) incarnation=([0-9a-f]*)`)
)

// addLog reads one run's stderr (log_level: debug).
func (l *ledger) addLog(stderr string) {
	for _, m := range storedRE.FindAllStringSubmatch(stderr, -1) {
		first, _ := strconv.ParseUint(m[1], 10, 64)
		last, _ := strconv.ParseUint(m[2], 10, 64)
		for s := first; s <= last; s++ {
			l.stored[rkey{m[4], s}] = m[3]
		}
	}
	for _, m := range movedRE.FindAllStringSubmatch(stderr, -1) {
		first, _ := strconv.ParseUint(m[1], 10, 64)
		last, _ := strconv.ParseUint(m[2], 10, 64)
		for s := first; s <= last; s++ {
			if _, ok := l.stored[rkey{m[3], s}]; ok {
				l.moved[rkey{m[3], s}] = rkey{m[4], s}
			}
		}
	}
	for _, m := range lostRE.FindAllStringSubmatch(stderr, -1) {
		first, _ := strconv.ParseUint(m[1], 10, 64)
		last, _ := strconv.ParseUint(m[2], 10, 64)
		l.lostAtExit = append(l.lostAtExit, lostRange{m[3], first, last})
	}
}

type wireDropped struct {
	First, Last, Count uint64
	Reason             string
	Incarnation        string
}

// addMessages reads what the emulator accepted (batch or single format).
func (l *ledger) addMessages(t *testing.T, msgs []iotemu.Message) {
	t.Helper()
	for i, m := range msgs {
		var env struct {
			Incarnation string            `json:"incarnation"`
			Volatile    bool              `json:"volatile"`
			Dropped     []wireDropped     `json:"dropped"`
			Readings    []json.RawMessage `json:"readings"`
			Seq         *uint64           `json:"seq"`
		}
		if err := json.Unmarshal(m.Payload, &env); err != nil {
			t.Errorf("message %d: %v\n%s", i, err, m.Payload)
			continue
		}
		if env.Volatile {
			l.volatile++
		}
		readings := env.Readings
		if env.Seq != nil { // single format: the message is the reading
			var r map[string]json.RawMessage
			json.Unmarshal(m.Payload, &r)
			delete(r, "device")
			delete(r, "incarnation")
			delete(r, "volatile")
			delete(r, "dropped")
			b, _ := json.Marshal(r)
			readings = []json.RawMessage{b}
		}
		for _, raw := range readings {
			var r struct{ Seq uint64 }
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Errorf("message %d: reading %s: %v", i, raw, err)
				continue
			}
			k := rkey{env.Incarnation, r.Seq}
			l.delivered[k]++
			if prev, ok := l.content[k]; !ok {
				l.content[k] = string(raw)
			} else if prev != string(raw) {
				l.collisions = append(l.collisions, fmt.Sprintf("%v: %s and %s", k, prev, raw))
			}
		}
		for _, d := range env.Dropped {
			inc := d.Incarnation
			if inc == "" {
				inc = env.Incarnation
			}
			for s := d.First; s <= d.Last && s-d.First < 1<<22; s++ {
				l.dropped[rkey{inc, s}] = d.Reason
			}
		}
	}
}

// addDeadLetters reads a dead-letter file, if there is one.
func (l *ledger) addDeadLetters(t *testing.T, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var dl struct {
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(sc.Bytes(), &dl); err != nil {
			t.Errorf("dead letter %s: %v", sc.Bytes(), err)
			continue
		}
		var env struct {
			Incarnation string `json:"incarnation"`
			Readings    []struct{ Seq uint64 }
		}
		json.Unmarshal(dl.Payload, &env)
		for _, r := range env.Readings {
			l.dead[rkey{env.Incarnation, r.Seq}] = true
		}
	}
}

// tally is the ledger's bottom line.
type tally struct {
	taken, delivered, duplicates int
	crossDuplicates              int            // delivered under two incarnations
	dropped                      map[string]int // by reason
	deadLettered, lostAtExit     int
	lostSilently                 []rkey
	reportedButDelivered         []rkey
	collisions                   []string
	volatileMessages             int
}

func (l *ledger) tally() tally {
	tl := tally{dropped: map[string]int{}, collisions: l.collisions, volatileMessages: l.volatile}
	for k, n := range l.delivered {
		tl.duplicates += n - 1
		if _, ok := l.dropped[k]; ok {
			tl.reportedButDelivered = append(tl.reportedButDelivered, k)
		}
	}
	all := maps.Clone(l.stored)
	movedTo := map[rkey]bool{}
	for _, to := range l.moved {
		movedTo[to] = true
	}
	for k := range l.delivered {
		if _, ok := all[k]; !ok && !movedTo[k] {
			all[k] = "unlogged" // stored, then killed before its log line
		}
	}
	tl.taken = len(all)
	for k, where := range all {
		if to, ok := l.moved[k]; ok {
			if l.delivered[k] > 0 && l.delivered[to] > 0 {
				// Published from memory, and again from the spool the
				// failing disk kept after all: a duplicate across
				// incarnations (see the README's Not guaranteed).
				tl.crossDuplicates++
			}
			if l.delivered[k] == 0 && l.dropped[k] == "" {
				k, where = to, "memory"
			}
		}
		switch {
		case l.delivered[k] > 0:
			tl.delivered++
		case l.dropped[k] != "":
			tl.dropped[l.dropped[k]]++
		case l.dead[k]:
			tl.deadLettered++
		case where == "memory" && l.inLostAtExit(k):
			tl.lostAtExit++
		default:
			tl.lostSilently = append(tl.lostSilently, k)
		}
	}
	sortKeys(tl.lostSilently)
	sortKeys(tl.reportedButDelivered)
	return tl
}

func (l *ledger) inLostAtExit(k rkey) bool {
	for _, r := range l.lostAtExit {
		if r.inc == k.inc && k.seq >= r.first && k.seq <= r.last {
			return true
		}
	}
	return false
}

func sortKeys(ks []rkey) {
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].inc != ks[j].inc {
			return ks[i].inc < ks[j].inc
		}
		return ks[i].seq < ks[j].seq
	})
}

func (tl tally) String() string {
	reasons := slices.Sorted(maps.Keys(tl.dropped))
	var dr []string
	for _, r := range reasons {
		dr = append(dr, fmt.Sprintf("%s %d", r, tl.dropped[r]))
	}
	return fmt.Sprintf("taken %d, delivered %d (+%d duplicates, %d across incarnations), reported dropped {%s}, dead-lettered %d, lost at exit from memory (logged) %d, lost silently %d, reported dropped but delivered %d, seqs carrying two readings %d, volatile messages %d",
		tl.taken, tl.delivered, tl.duplicates, tl.crossDuplicates, strings.Join(dr, ", "), tl.deadLettered, tl.lostAtExit,
		len(tl.lostSilently), len(tl.reportedButDelivered), len(tl.collisions), tl.volatileMessages)
}

// check fails the test on a silent loss, a drop report naming a delivered
// reading, or a key carrying two readings.
func (tl tally) check(t *testing.T) {
	t.Helper()
	if n := len(tl.lostSilently); n > 0 {
		t.Errorf("%d readings lost silently: %v", n, tl.lostSilently[:min(n, 30)])
	}
	if n := len(tl.reportedButDelivered); n > 0 {
		t.Errorf("%d readings reported dropped but delivered: %v", n, tl.reportedButDelivered[:min(n, 30)])
	}
	if n := len(tl.collisions); n > 0 {
		t.Errorf("%d (incarnation, seq) pairs carry two different readings: %v", n, tl.collisions[:min(n, 5)])
	}
}
