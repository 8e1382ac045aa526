package iotemu

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Answer is how the emulator answers requests; see Mode and SetMode.
type Answer int

const (
	// Normal answers as AWS IoT does, with the faults of FailNext,
	// LoseReplies, SetRates and SetDelay.
	Normal Answer = iota
	// Redirect answers Mode.Status (a 3xx, 301 if 0) with a Location
	// header (Mode.Location) and a small HTML page, as a captive portal or
	// a web server at a wrong host does.
	Redirect
	// HTML answers Mode.Status (200 if 0) with an HTML page and none of
	// AWS's headers, as a proxy, a captive portal or a web server does. A
	// message answered 2xx this way is not accepted (not in Messages, not
	// recorded): it is kept in Swallowed.
	HTML
	// Stall reads the request and does not answer, until the mode changes
	// (the request is then answered in the new mode) or the client goes
	// away. A stalled request holds CloseIdle up.
	Stall
)

func (a Answer) String() string {
	switch a {
	case Normal:
		return "normal"
	case Redirect:
		return "redirect"
	case HTML:
		return "html"
	case Stall:
		return "stall"
	}
	return fmt.Sprintf("Answer(%d)", int(a))
}

// DefaultLocation is where a Redirect points when Mode.Location is empty;
// .invalid never resolves.
const DefaultLocation = "https://portal.invalid/login"

// Mode is how the emulator answers every request, whatever the listener,
// before anything else (as something in front of AWS would). The zero value
// is Normal.
type Mode struct {
	Answer Answer
	// Status is the answer's status: for Redirect 300-399 (0: 301), for
	// HTML 200-599 (0: 200). Unused otherwise.
	Status int
	// Location is a Redirect's Location header ("": DefaultLocation).
	Location string
	// Title is the HTML page's <title> ("": the status and its text, or
	// "Guest Wi-Fi: please log in" for a 2xx).
	Title string
}

// withDefaults fills in the zero fields.
func (m Mode) withDefaults() Mode {
	switch m.Answer {
	case Redirect:
		if m.Status == 0 {
			m.Status = http.StatusMovedPermanently
		}
		if m.Location == "" {
			m.Location = DefaultLocation
		}
	case HTML:
		if m.Status == 0 {
			m.Status = http.StatusOK
		}
	}
	if m.Title == "" && (m.Answer == Redirect || m.Answer == HTML) {
		m.Title = strings.TrimSpace(strconv.Itoa(m.Status) + " " + http.StatusText(m.Status))
		if m.Status/100 == 2 {
			m.Title = "Guest Wi-Fi: please log in"
		}
	}
	return m
}

func (m Mode) validate() error {
	switch m.Answer {
	case Normal, Stall:
	case Redirect:
		if m.Status < 300 || m.Status > 399 {
			return fmt.Errorf("emulator mode redirect: status %d is not 3xx", m.Status)
		}
	case HTML:
		// 1xx would be sent as an interim answer, followed by net/http's 200.
		if m.Status < 200 || m.Status > 599 {
			return fmt.Errorf("emulator mode html: status %d is not 200-599", m.Status)
		}
	default:
		return fmt.Errorf("emulator mode: unknown answer %d", int(m.Answer))
	}
	return nil
}

func (m Mode) String() string {
	m = m.withDefaults()
	switch m.Answer {
	case Redirect:
		return fmt.Sprintf("redirect=%d,%s", m.Status, m.Location)
	case HTML:
		return fmt.Sprintf("html=%d", m.Status)
	}
	return m.Answer.String()
}

// ParseMode parses a mode as Mode.String writes it: normal, stall,
// html[=STATUS] or redirect[=STATUS[,LOCATION]].
func ParseMode(s string) (Mode, error) {
	name, arg, hasArg := strings.Cut(strings.TrimSpace(s), "=")
	var m Mode
	switch strings.ToLower(name) {
	case "normal":
		m.Answer = Normal
	case "stall":
		m.Answer = Stall
	case "html":
		m.Answer = HTML
	case "redirect":
		m.Answer = Redirect
	default:
		return Mode{}, fmt.Errorf("mode %q: want normal, stall, html[=STATUS] or redirect[=STATUS[,LOCATION]]", s)
	}
	if hasArg {
		if m.Answer != HTML && m.Answer != Redirect {
			return Mode{}, fmt.Errorf("mode %q: %s takes no argument", s, name)
		}
		status, loc, hasLoc := strings.Cut(arg, ",")
		n, err := strconv.Atoi(status)
		if err != nil {
			return Mode{}, fmt.Errorf("mode %q: status %q is not a number", s, status)
		}
		m.Status = n
		if hasLoc {
			if m.Answer != Redirect {
				return Mode{}, fmt.Errorf("mode %q: only redirect takes a location", s)
			}
			m.Location = loc
		}
	}
	if err := m.withDefaults().validate(); err != nil {
		return Mode{}, fmt.Errorf("mode %q: %w", s, err)
	}
	return m, nil
}

// SetMode switches how the emulator answers from the next request on (and
// answers stalled requests in the new mode). Mode{} goes back to Normal.
// Rates, FailNext and LoseReplies apply only in Normal mode, and are kept
// meanwhile; SetDelay applies in every mode but Stall.
func (s *Server) SetMode(m Mode) error {
	m = m.withDefaults()
	if err := m.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
	close(s.modeChanged)
	s.modeChanged = make(chan struct{})
	s.log.Info("answer mode", "mode", m.String())
	return nil
}

// Mode returns the current mode, defaults filled in.
func (s *Server) Mode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// Swallowed returns the messages answered 2xx by the HTML mode (a captive
// portal): not accepted, but what a client may have taken as delivered.
func (s *Server) Swallowed() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.swallowed)
}

// WaitRequests blocks until at least n requests have been received,
// whatever the answer, or returns ctx's error.
func (s *Server) WaitRequests(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, requested := s.counts.requests, s.requested
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-requested:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d requests (have %d): %w", n, got, ctx.Err())
		}
	}
}

// answerMode answers r as the mode says, unless it is Normal; it reports
// whether it did. It runs before anything else in the handler.
func (s *Server) answerMode(w http.ResponseWriter, r *http.Request, id string, c *conn) bool {
	var body []byte
	read := false
	for {
		s.mu.Lock()
		m, changed, closed := s.mode, s.modeChanged, s.closed
		s.mu.Unlock()
		if closed {
			panic(http.ErrAbortHandler)
		}
		if m.Answer == Normal {
			if read {
				// The body was read while stalled: hand it on.
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			return false
		}
		if !read {
			// Read first: net/http notices a client going away only
			// once the body is consumed.
			var err error
			if body, err = io.ReadAll(io.LimitReader(r.Body, 1<<20)); err != nil {
				s.log.Debug("reading request body failed", "request_id", id, "err", err)
				panic(http.ErrAbortHandler)
			}
			read = true
		}
		if m.Answer == Stall {
			s.log.Info("stalling request", "request_id", id, "path", r.URL.EscapedPath())
			select {
			case <-changed:
				continue
			case <-r.Context().Done():
				panic(http.ErrAbortHandler)
			}
		}
		s.pause(r.Context())
		if m.Status/100 == 2 {
			s.swallow(r, c, id, body)
		}
		s.log.Info("answered by mode", "request_id", id, "mode", m.String(), "path", r.URL.EscapedPath())
		writeHTML(w, m)
		return true
	}
}

// swallow keeps what a captive portal took, as a Message, best effort.
func (s *Server) swallow(r *http.Request, c *conn, id string, body []byte) {
	state := c.tls.ConnectionState()
	msg := Message{RequestID: id, Payload: body, Received: time.Now(), ALPN: state.NegotiatedProtocol,
		Listener: c.listener, RawPath: r.URL.EscapedPath()}
	if escaped, ok := strings.CutPrefix(msg.RawPath, "/topics/"); ok {
		if topic, err := url.PathUnescape(escaped); err == nil {
			msg.Topic = topic
		}
	}
	if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && q.Get("qos") == "1" {
		msg.QoS = 1
	}
	if len(state.PeerCertificates) > 0 {
		msg.ClientCN = state.PeerCertificates[0].Subject.CommonName
	}
	s.mu.Lock()
	s.swallowed = append(s.swallowed, msg)
	s.mu.Unlock()
}

// writeHTML answers with m's status and an HTML page, without AWS's headers.
func writeHTML(w http.ResponseWriter, m Mode) {
	h := w.Header()
	if m.Answer == Redirect {
		h.Set("Location", m.Location)
	}
	if m.Status == http.StatusNoContent || m.Status == http.StatusNotModified {
		w.WriteHeader(m.Status) // no body allowed
		return
	}
	title := html.EscapeString(m.Title)
	page := "<!DOCTYPE html>\n<html><head><title>" + title + "</title></head>\n<body><h1>" + title + "</h1>"
	if m.Answer == Redirect {
		page += `<p>The document has moved <a href="` + html.EscapeString(m.Location) + `">here</a>.</p>`
	}
	page += "</body></html>\n"
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(page)))
	w.WriteHeader(m.Status)
	_, _ = io.WriteString(w, page)
}
