package main

// Log lines for the journal: under systemd, with stderr connected to
// journald, each line starts with its level as a syslog priority
// (sd-daemon(3): "<3>" SD_ERR, "<4>" SD_WARNING, "<6>" SD_INFO, "<7>"
// SD_DEBUG), which journald strips and stores as the entry's priority, so
// `journalctl -p warning` works. Without the prefix every line is
// priority 6, whatever its level.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
)

// newLogger logs to stderr. Under journald (JOURNAL_STREAM names stderr)
// the time is left out, because the journal stamps every line itself, and
// each line starts with its priority.
func newLogger(w io.Writer, level string) *slog.Logger {
	return newLoggerEnv(w, level, os.Getenv)
}

func newLoggerEnv(w io.Writer, level string, getenv func(string) string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if !journalStream(getenv, w) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	pw := &prefixWriter{w: w}
	return slog.New(&journalHandler{inner: slog.NewTextHandler(pw, opts), pw: pw})
}

// journalStream reports whether w is the stream systemd connected to the
// journal: JOURNAL_STREAM holds its device and inode ("dev:ino"), and
// systemd.exec(5) says to compare them with the descriptor's own, since
// the variable is inherited by children whose stderr may be elsewhere (a
// file, a pipe to another program).
func journalStream(getenv func(string) string, w io.Writer) bool {
	want := getenv("JOURNAL_STREAM")
	f, ok := w.(*os.File)
	if want == "" || !ok {
		return false
	}
	fi, err := f.Stat() // fstat(2) of the descriptor
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && want == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// priority is a level's sd-daemon(3) prefix.
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

// journalHandler prefixes each line of the text handler it wraps with the
// record's priority. Handlers made by WithAttrs and WithGroup share the
// writer, and with it its lock.
type journalHandler struct {
	inner slog.Handler
	pw    *prefixWriter
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.pw.mu.Lock()
	defer h.pw.mu.Unlock()
	h.pw.prefix = priority(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(attrs), pw: h.pw}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), pw: h.pw}
}

// prefixWriter writes each line (the text handler writes a record in one
// Write) with the prefix set for it, in one write(2), so lines of
// concurrent loggers never interleave. Its buffer is reused: no allocation
// per line.
type prefixWriter struct {
	w      io.Writer
	mu     sync.Mutex // held by journalHandler.Handle around Write
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(append(p.buf[:0], p.prefix...), b...)
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}
