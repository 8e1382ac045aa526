package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/agent/batch"
	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/agent/spool"
)

// spoolCommands are spool's subcommands.
var spoolCommands = []string{"stats", "verify", "export"}

// cmdSpool inspects the spool without changing it: safe while the agent
// runs.
func cmdSpool(_ context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "usage: sensor-agent spool stats|verify|export [-config FILE | -dir DIR]")
		fmt.Fprintln(stderr, "  stats   pending readings, batches, bytes, oldest age, dropped and dead-lettered counts")
		fmt.Fprintln(stderr, "  verify  check every record of every segment; exit 1 on damage")
		fmt.Fprintln(stderr, "  export  pending readings as JSON lines on stdout")
	}
	sub, err := subcommand(args, spoolCommands, usage)
	if err != nil {
		return err
	}
	fs := newFlagSet("spool "+sub, stderr)
	cfgPath := fs.String("config", config.DefaultPath, "config file (for spool.dir and publish limits)")
	dir := fs.String("dir", "", "spool directory (instead of the config's spool.dir)")
	asJSON := fs.Bool("json", false, "stats as JSON")
	fs.Usage = func() { usage(); fs.PrintDefaults() }
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	pub := config.Defaults().Publish
	if *dir == "" {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		*dir, pub = cfg.Spool.Dir, cfg.Publish
	}
	if _, err := os.Stat(*dir); err != nil {
		return fmt.Errorf("spool %s: %w", *dir, err)
	}
	switch sub {
	case "stats":
		return spoolStats(stdout, *dir, pub, *asJSON)
	case "verify":
		return spoolVerify(stdout, *dir)
	default: // export
		return spoolExport(stdout, *dir)
	}
}

type spoolStatsOut struct {
	Dir             string  `json:"dir"`
	Incarnation     string  `json:"incarnation"`
	PendingReadings int     `json:"pending_readings"`
	PendingBatches  int     `json:"pending_batches"`
	PendingBytes    int64   `json:"pending_bytes"`
	DiskBytes       int64   `json:"disk_bytes"`
	Segments        int     `json:"segments"`
	OldestSeq       uint64  `json:"oldest_seq,omitempty"`
	OldestTime      string  `json:"oldest_time,omitempty"`
	OldestAgeSec    float64 `json:"oldest_age_seconds,omitempty"`
	DropReports     int     `json:"drop_reports_pending"`
	CorruptRegions  int64   `json:"corrupt_regions"`
	DeadLettered    int     `json:"dead_lettered_readings"`
}

func spoolStats(w io.Writer, dir string, pub config.Publish, asJSON bool) error {
	st, err := spool.ReadStats(dir, nil)
	if err != nil {
		return err
	}
	out := spoolStatsOut{Dir: dir, Incarnation: st.Incarnation, DiskBytes: st.Bytes, Segments: st.Segments,
		DropReports: st.DroppedRanges, CorruptRegions: st.CorruptRegions}
	// Batches: what the sender would make of the pending readings.
	b := batch.New(batch.Options{MaxReadings: pub.MaxReadings, MaxBytes: int(pub.MaxBytes), FlushInterval: time.Hour,
		Single: pub.Format == "single"}, time.Now)
	err = spool.Export(dir, nil, func(r spool.Record) error {
		h, js, ok := agent.SplitRecord(r.Data)
		if !ok {
			return nil
		}
		if out.PendingReadings == 0 {
			out.OldestSeq = r.Seq
			var rd struct{ Time string }
			if json.Unmarshal(js, &rd) == nil {
				out.OldestTime = rd.Time
				if t, err := time.Parse(time.RFC3339, rd.Time); err == nil {
					out.OldestAgeSec = time.Since(t).Round(time.Second).Seconds()
				}
			}
		}
		out.PendingReadings++
		out.PendingBytes += int64(len(js))
		out.PendingBatches += len(b.Add(h, r.Seq, js))
		return nil
	})
	if err != nil {
		return err
	}
	out.PendingBatches += len(b.Flush())
	out.DeadLettered, err = countDeadLetters(filepath.Join(dir, agent.DeadLetterFile))
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(w, "spool %s (incarnation %s)\n", dir, out.Incarnation)
	fmt.Fprintf(w, "  pending:       %d readings in about %d messages, %d bytes\n", out.PendingReadings, out.PendingBatches, out.PendingBytes)
	if out.PendingReadings > 0 {
		fmt.Fprintf(w, "  oldest:        seq %d taken %s (%s ago)\n", out.OldestSeq, out.OldestTime, time.Duration(out.OldestAgeSec)*time.Second)
	}
	fmt.Fprintf(w, "  disk:          %d bytes in %d segments\n", out.DiskBytes, out.Segments)
	fmt.Fprintf(w, "  dropped:       %d lost ranges not yet reported to the cloud (spool full, corrupt or lost by storage)\n", out.DropReports)
	fmt.Fprintf(w, "  corrupt:       %d damaged regions skipped\n", out.CorruptRegions)
	fmt.Fprintf(w, "  dead-lettered: %d readings (%s)\n", out.DeadLettered, filepath.Join(dir, agent.DeadLetterFile))
	return nil
}

func countDeadLetters(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var dl agent.DeadLetter
		if json.Unmarshal(sc.Bytes(), &dl) == nil {
			n += len(dl.Seqs)
		}
	}
	return n, sc.Err()
}

func spoolVerify(w io.Writer, dir string) error {
	rep, err := spool.Verify(dir, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "spool %s (incarnation %s): %d records, %d pending, %d segments\n",
		rep.Dir, rep.Incarnation, rep.Records, rep.Pending, len(rep.Segments))
	problem := func(what, msg string) { fmt.Fprintf(w, "  %s: %s\n", what, msg) }
	if rep.MetaErr != "" {
		problem("meta", rep.MetaErr)
	}
	if rep.CursorErr != "" {
		problem("cursor", rep.CursorErr+" (acknowledgements lost: already-sent readings will be sent again)")
	}
	for _, sg := range rep.Segments {
		status := "ok"
		switch {
		case sg.ReadErr != "":
			status = "unreadable: " + sg.ReadErr
		case sg.HeaderErr != "":
			status = "damaged header (records recovered by their checksums): " + sg.HeaderErr
		case sg.CorruptRegions > 0:
			status = fmt.Sprintf("%d damaged regions (%d bytes) skipped", sg.CorruptRegions, sg.CorruptBytes)
		case sg.TailBytes > 0:
			status = fmt.Sprintf("%d bytes of torn tail (cut off at the next start)", sg.TailBytes)
		}
		fmt.Fprintf(w, "  %s: %d records, seq %d..%d, %d bytes: %s\n", sg.Name, sg.Records, sg.FirstSeq, sg.LastSeq, sg.Bytes, status)
	}
	for _, f := range rep.SetAside {
		problem("set aside by an earlier recovery", f)
	}
	if !rep.OK() {
		fmt.Fprintln(w, "damaged: the agent skips what it cannot read and reports it; nothing else is needed")
		return exitError{1}
	}
	fmt.Fprintln(w, "ok")
	return nil
}

func spoolExport(w io.Writer, dir string) error {
	bw := bufio.NewWriter(w)
	err := spool.Export(dir, nil, func(r spool.Record) error {
		h, js, ok := agent.SplitRecord(r.Data)
		if !ok || len(js) < 2 {
			return nil
		}
		if h.Incarnation != "" {
			// Not the spool's: say whose seq it is.
			fmt.Fprintf(bw, `{"incarnation":%q,`, h.Incarnation)
			if h.Volatile {
				bw.WriteString(`"volatile":true,`)
			}
			js = js[1:]
		}
		bw.Write(js)
		return bw.WriteByte('\n')
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}
