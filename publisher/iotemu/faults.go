package iotemu

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"
)

// Rates makes the emulator fail at random, for soak tests. Draws come from
// a math/rand source seeded with Options.Seed, so a sequential run is
// reproducible.
type Rates struct {
	// Status maps an HTTP status (400-599) to the probability of answering
	// a request with it. The probabilities must sum to at most 1.
	Status map[int]float64
	// Lose is the probability that an accepted message's reply is lost:
	// the message is recorded, then the connection is closed.
	Lose float64
}

// SetRates replaces the probabilistic faults.
func (s *Server) SetRates(r Rates) error {
	sum := 0.0
	for status, p := range r.Status {
		if status < 400 || status > 599 {
			return fmt.Errorf("emulator rates: status %d is not an error status", status)
		}
		if p < 0 || p > 1 {
			return fmt.Errorf("emulator rates: status %d: probability %v out of [0, 1]", status, p)
		}
		sum += p
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("emulator rates: status probabilities sum to %v, more than 1", sum)
	}
	if r.Lose < 0 || r.Lose > 1 {
		return fmt.Errorf("emulator rates: lose probability %v out of [0, 1]", r.Lose)
	}
	r.Status = maps.Clone(r.Status)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rates = r
	s.statuses = slices.Sorted(maps.Keys(r.Status))
	return nil
}

// FailNext makes the next n requests fail with status (400-599), answered
// with AWS's error name for it (429 ThrottlingException, 503
// ServiceUnavailableException, ...). Calls queue up. It panics on a status
// that is not an error, which is a bug in the test.
func (s *Server) FailNext(status, n int) {
	if status < 400 || status > 599 {
		panic(fmt.Sprintf("iotemu: FailNext(%d): not an error status", status))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failQueue = append(s.failQueue, status)
	}
}

// LoseReplies makes the next n accepted messages lose their reply: each is
// recorded, then its connection is closed without an answer.
func (s *Server) LoseReplies(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lose += max(n, 0)
}

// SetDelay delays every reply by d (0 for none). A delayed request whose
// client goes away is dropped.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetDown takes the emulator down (listeners and connections closed, so
// new connections are refused) or brings it back on the same addresses.
func (s *Server) SetDown(down bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("emulator is closed")
	}
	if down == s.down {
		s.mu.Unlock()
		return nil
	}
	if !down {
		defer s.mu.Unlock()
		lns := make([]net.Listener, 0, len(s.slots))
		for _, sl := range s.slots {
			ln, err := net.Listen("tcp", sl.addr)
			if err != nil {
				for _, l := range lns {
					_ = l.Close()
				}
				return fmt.Errorf("emulator up again: %w", err)
			}
			lns = append(lns, ln)
		}
		for i, sl := range s.slots {
			s.serve(sl, lns[i])
		}
		s.down = false
		return nil
	}
	s.down = true
	var closers []interface{ Close() error }
	for _, sl := range s.slots {
		closers = append(closers, sl.ln)
		sl.ln = nil
	}
	for c := range s.conns {
		closers = append(closers, c)
	}
	s.mu.Unlock()
	for _, c := range closers {
		_ = c.Close()
	}
	return nil
}

// Down reports whether the emulator is down.
func (s *Server) Down() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// injectedStatus returns the status a request must fail with, if any.
func (s *Server) injectedStatus() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failQueue) > 0 {
		status := s.failQueue[0]
		s.failQueue = s.failQueue[1:]
		return status, true
	}
	if len(s.statuses) == 0 {
		return 0, false
	}
	x := s.faultRand.Float64()
	for _, status := range s.statuses {
		x -= s.rates.Status[status]
		if x < 0 {
			return status, true
		}
	}
	return 0, false
}

// loseReply reports whether an accepted message's reply must be lost.
func (s *Server) loseReply() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lose > 0 {
		s.lose--
		return true
	}
	return s.rates.Lose > 0 && s.faultRand.Float64() < s.rates.Lose
}

// pause waits out the configured delay. If the client goes away meanwhile
// it aborts the handler, which closes the connection without a reply:
// returning normally would make net/http send an empty 200.
func (s *Server) pause(ctx context.Context) {
	s.mu.Lock()
	d := s.delay
	s.mu.Unlock()
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		panic(http.ErrAbortHandler)
	}
}
