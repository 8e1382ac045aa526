package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Report is what Verify found.
type Report struct {
	Dir         string
	Incarnation string
	MetaErr     string // "" when the meta file is sound
	CursorErr   string // "" when the cursor is sound or absent
	Segments    []SegmentReport
	Records     int64    // valid records in all segments
	Pending     int64    // of them, not acknowledged
	Ignored     []string // files in Dir that are not the spool's
	SetAside    []string // *.corrupt files left by earlier recoveries
}

// SegmentReport describes one segment file.
type SegmentReport struct {
	Name           string
	Bytes          int64
	FirstSeq       uint64 // from the name
	LastSeq        uint64 // of the last valid record, 0 if none
	Records        int64
	HeaderErr      string
	CorruptRegions int64
	CorruptBytes   int64
	TailBytes      int64 // bytes after the last valid record: a torn write, or corruption
	ReadErr        string
}

// OK reports whether nothing is damaged.
func (r *Report) OK() bool {
	if r.MetaErr != "" || r.CursorErr != "" {
		return false
	}
	for _, s := range r.Segments {
		if s.HeaderErr != "" || s.CorruptRegions > 0 || s.TailBytes > 0 || s.ReadErr != "" {
			return false
		}
	}
	return true
}

// Verify checks every record of every segment in dir, acknowledged or
// not, without changing anything. It returns an error only when the
// directory cannot be read; damage is described in the Report. A spool
// in use may show a torn tail on its active segment (a write in flight).
func Verify(dir string, fsys FS) (Report, error) {
	if fsys == nil {
		fsys = OSFS{}
	}
	rep := Report{Dir: dir}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return rep, fmt.Errorf("spool: %w", err)
	}
	var segFiles []segFile
	for _, e := range entries {
		name := e.Name()
		if first, ok := parseSegName(name); ok && e.Type().IsRegular() {
			segFiles = append(segFiles, segFile{name, first})
		} else if strings.HasSuffix(name, corruptSuffix) {
			rep.SetAside = append(rep.SetAside, name)
		} else if name != metaName && name != cursorName && name != liveCursorName && name != lockName && name != reserveName {
			rep.Ignored = append(rep.Ignored, name)
		}
	}
	sort.Slice(segFiles, func(i, j int) bool { return segFiles[i].first < segFiles[j].first })

	var inc [16]byte
	if b, err := readSmallFile(fsys, filepath.Join(dir, metaName), 4096); err != nil {
		rep.MetaErr = err.Error()
	} else if inc, err = decodeMeta(b); err != nil {
		rep.MetaErr = fmt.Sprintf("%s: %v", metaName, err)
	} else {
		rep.Incarnation = fmt.Sprintf("%x", inc)
	}
	if b, err := readSmallFile(fsys, filepath.Join(dir, cursorName), maxCursorFile); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			rep.CursorErr = err.Error()
		}
	} else if _, err := decodeCursor(b, inc); err != nil && rep.MetaErr == "" {
		rep.CursorErr = fmt.Sprintf("%s: %v", cursorName, err)
	}

	var buf []byte
	for i, sf := range segFiles {
		hi := uint64(math.MaxUint64)
		if i+1 < len(segFiles) {
			hi = segFiles[i+1].first
		}
		sr := SegmentReport{Name: sf.name, FirstSeq: sf.first}
		f, err := fsys.OpenFile(filepath.Join(dir, sf.name), os.O_RDONLY, 0)
		if err != nil {
			sr.ReadErr = err.Error()
			rep.Segments = append(rep.Segments, sr)
			continue
		}
		if st, err := f.Stat(); err == nil {
			sr.Bytes = st.Size()
		}
		res := scanSegment(f, sr.Bytes, sf.first, 0, hi, buf)
		f.Close()
		if res.hdrErr == nil && rep.MetaErr == "" && res.hdr.incarnation != inc {
			res.hdrErr = errors.New("segment header: written by another incarnation of the spool")
		}
		if res.hdrErr != nil {
			sr.HeaderErr = res.hdrErr.Error()
		}
		if res.readErr != nil {
			sr.ReadErr = res.readErr.Error()
		}
		sr.LastSeq, sr.Records, sr.TailBytes = res.last, res.records, res.tail
		for _, c := range res.corrupt {
			sr.CorruptRegions++
			sr.CorruptBytes += c.n
		}
		rep.Records += res.records
		rep.Segments = append(rep.Segments, sr)
	}
	if st, err := ReadStats(dir, fsys); err == nil {
		rep.Pending = st.Pending
	}
	return rep, nil
}

// openReadOnly loads a spool without changing any file: no truncation,
// no deletion, no meta or cursor writes.
func openReadOnly(dir string, fsys FS) (*Spool, error) {
	return open(Options{Dir: dir, FS: fsys}, true)
}

// Export calls fn for every pending (unacknowledged) record, oldest
// first, reading dir without changing it. It stops at fn's first error
// and returns it.
func Export(dir string, fsys FS, fn func(Record) error) error {
	s, err := openReadOnly(dir, fsys)
	if err != nil {
		return err
	}
	defer s.Close()
	var ferr error
	err = s.Pending(0, 0, func(r Record) bool {
		ferr = fn(r)
		return ferr == nil
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// ReadStats returns the Stats of the spool in dir without opening it for
// writing. Damage counters describe what a recovery would find.
func ReadStats(dir string, fsys FS) (Stats, error) {
	s, err := openReadOnly(dir, fsys)
	if err != nil {
		return Stats{}, err
	}
	defer s.Close()
	return s.Stats(), nil
}
