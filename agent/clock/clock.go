// Package clock tells whether the system clock is synchronised, so that
// readings taken before it is can be flagged. A Raspberry Pi has no
// real-time clock: it boots with the time saved at the last shutdown
// (fake-hwclock) or with 1970, and keeps it until NTP answers, which on a
// device without network may be never. The agent samples anyway.
package clock

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Source says whether the system clock is synchronised. It is asked once
// per reading, so it must be cheap.
type Source interface {
	Synced() bool
}

// TimesyncFile is the file systemd-timesyncd creates once it has
// synchronised the clock (it lives on /run, so it goes away at reboot).
const TimesyncFile = "/run/systemd/timesync/synchronized"

// Kernel NTP state, see adjtimex(2).
const (
	// TimeError is adjtimex's return value while the clock is not
	// synchronised (TIME_ERROR, also called TIME_BAD).
	TimeError = 5
	// StaUnsync is the status bit set while the clock is not synchronised.
	StaUnsync = 0x40
)

// Defaults for Options.
const (
	DefaultRecheck       = 5 * time.Second
	DefaultRecheckSynced = time.Minute
)

// Options configures a System. The zero value is the real system.
type Options struct {
	// Root is prepended to TimesyncFile ("" = the real root); tests point
	// it at a fake tree.
	Root string
	// Adjtimex reads the kernel's NTP state without changing it: the
	// adjtimex(2) return value (TimeError when unsynchronised) and the
	// status bits (StaUnsync). nil = the real system call with modes 0,
	// which needs no privilege (but is blocked by systemd's ProtectClock=,
	// in which case only TimesyncFile is consulted).
	Adjtimex func() (state, status int, err error)
	// Now is the clock used for caching (nil = time.Now).
	Now func() time.Time
	// Recheck is how long an unsynchronised answer is reused (0 =
	// DefaultRecheck); RecheckSynced, a synchronised one (0 =
	// DefaultRecheckSynced): once synchronised the clock stays so, as far
	// as readings are concerned, until the next check.
	Recheck, RecheckSynced time.Duration
	// Logger says once when the state cannot be read (nil = discard).
	Logger *slog.Logger
}

// System is the Source of the machine the agent runs on: synchronised when
// systemd-timesyncd says so (TimesyncFile exists), else when the kernel
// says so (adjtimex neither returns TIME_ERROR nor sets STA_UNSYNC, as
// after chrony or ntpd synchronised it). When neither can be read, the
// clock counts as unsynchronised: readings are flagged rather than
// trusted. Answers are cached (see Options). Safe for concurrent use.
type System struct {
	opts Options
	file string

	mu     sync.Mutex
	synced bool
	next   time.Time // when to look again; zero: never looked
	failed string    // the last error logged
}

// New returns the system's Source.
func New(opts Options) *System {
	if opts.Adjtimex == nil {
		opts.Adjtimex = adjtimex
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Recheck <= 0 {
		opts.Recheck = DefaultRecheck
	}
	if opts.RecheckSynced <= 0 {
		opts.RecheckSynced = DefaultRecheckSynced
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &System{opts: opts, file: filepath.Join(opts.Root, filepath.FromSlash(TimesyncFile))}
}

// Synced reports whether the clock is synchronised, from the cache when
// the last look is recent enough.
func (s *System) Synced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if !s.next.IsZero() && now.Before(s.next) {
		return s.synced
	}
	synced, err := s.check()
	if err != nil {
		if msg := err.Error(); msg != s.failed {
			s.failed = msg
			s.opts.Logger.Warn("cannot tell whether the system clock is synchronised: readings are flagged clock_synced=false until "+TimesyncFile+" appears",
				"err", err)
		}
	} else {
		s.failed = ""
	}
	s.synced = synced
	if synced {
		s.next = now.Add(s.opts.RecheckSynced)
	} else {
		s.next = now.Add(s.opts.Recheck)
	}
	return synced
}

// check looks at the timesyncd file, then at the kernel.
func (s *System) check() (bool, error) {
	_, err := os.Stat(s.file)
	if err == nil {
		return true, nil
	}
	var fileErr error
	if !errors.Is(err, fs.ErrNotExist) {
		fileErr = err // e.g. /run not readable: the kernel may still tell
	}
	state, status, err := s.opts.Adjtimex()
	if err != nil {
		return false, errors.Join(fileErr, err)
	}
	return KernelSynced(state, status), nil
}

// KernelSynced interprets adjtimex(2)'s return value and status bits.
func KernelSynced(state, status int) bool {
	return state != TimeError && status&StaUnsync == 0
}
