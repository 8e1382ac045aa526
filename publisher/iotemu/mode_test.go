package iotemu_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// noRedirects is a raw client that reports redirects instead of following
// them.
func noRedirects(t *testing.T, alpn bool, s *iotemu.Server) *http.Client {
	c := rawClient(t, s.PKI().ClientTLSConfig(alpn))
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

type rawReply struct {
	status int
	header http.Header
	body   string
}

// post sends POST /topics/<path>?qos=1 with body and returns the reply
// whatever it is.
func post(ctx context.Context, c *http.Client, addr, path, body string) (rawReply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/", strings.NewReader(body))
	if err != nil {
		return rawReply{}, err
	}
	req.URL.Opaque = path
	req.URL.RawQuery = "qos=1"
	resp, err := c.Do(req)
	if err != nil {
		return rawReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return rawReply{resp.StatusCode, resp.Header, string(b)}, err
}

func TestModes(t *testing.T) {
	tests := []struct {
		name      string
		mode      iotemu.Mode
		status    int
		location  string
		title     string // "" when no body is allowed
		swallowed bool
	}{
		{"redirect default", iotemu.Mode{Answer: iotemu.Redirect}, 301, iotemu.DefaultLocation, "301 Moved Permanently", false},
		{"redirect 302", iotemu.Mode{Answer: iotemu.Redirect, Status: 302, Location: "https://elsewhere.invalid/x"}, 302, "https://elsewhere.invalid/x", "302 Found", false},
		{"redirect 303", iotemu.Mode{Answer: iotemu.Redirect, Status: 303}, 303, iotemu.DefaultLocation, "303 See Other", false},
		{"redirect 307", iotemu.Mode{Answer: iotemu.Redirect, Status: 307}, 307, iotemu.DefaultLocation, "307 Temporary Redirect", false},
		{"redirect 308 titled", iotemu.Mode{Answer: iotemu.Redirect, Status: 308, Title: "Moved <for good>"}, 308, iotemu.DefaultLocation, "Moved &lt;for good&gt;", false},
		{"redirect 304", iotemu.Mode{Answer: iotemu.Redirect, Status: 304}, 304, iotemu.DefaultLocation, "", false},
		{"404 page", iotemu.Mode{Answer: iotemu.HTML, Status: 404}, 404, "", "404 Not Found", false},
		{"400 page", iotemu.Mode{Answer: iotemu.HTML, Status: 400}, 400, "", "400 Bad Request", false},
		{"503 page", iotemu.Mode{Answer: iotemu.HTML, Status: 503}, 503, "", "503 Service Unavailable", false},
		{"captive portal 200", iotemu.Mode{Answer: iotemu.HTML}, 200, "", "Guest Wi-Fi: please log in", true},
		{"204", iotemu.Mode{Answer: iotemu.HTML, Status: 204}, 204, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, iotemu.Options{})
			if err := s.SetMode(tt.mode); err != nil {
				t.Fatal(err)
			}
			// Whatever the listener, and before the 443-style listener's
			// ALPN check: what is in front of AWS answers first.
			for i, lc := range []struct {
				addr string
				alpn bool
			}{{s.ALPNAddr(), true}, {s.ALPNAddr(), false}, {s.PlainAddr(), false}} {
				r, err := post(t.Context(), noRedirects(t, lc.alpn, s), lc.addr, "/topics/s%2Fx", fmt.Sprintf(`{"n":%d}`, i))
				if err != nil {
					t.Fatal(err)
				}
				if r.status != tt.status || r.header.Get("Location") != tt.location {
					t.Errorf("request %d: %d Location %q, want %d Location %q", i, r.status, r.header.Get("Location"), tt.status, tt.location)
				}
				for _, h := range []string{"x-amzn-RequestId", "x-amzn-ErrorType"} {
					if v := r.header.Get(h); v != "" {
						t.Errorf("request %d: %s %q in an answer that is not AWS's", i, h, v)
					}
				}
				if tt.title == "" {
					if r.body != "" {
						t.Errorf("request %d: body %q, want none", i, r.body)
					}
				} else if !strings.Contains(r.body, "<title>"+tt.title+"</title>") || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
					t.Errorf("request %d: %s page %q, want an HTML page titled %q", i, r.header.Get("Content-Type"), r.body, tt.title)
				}
			}
			if n := len(s.Messages()); n != 0 {
				t.Errorf("%d messages accepted in mode %v, want none", n, tt.mode)
			}
			sw := s.Swallowed()
			if !tt.swallowed {
				if len(sw) != 0 {
					t.Errorf("%d messages swallowed by a %d answer", len(sw), tt.status)
				}
			} else if len(sw) != 3 || sw[2].Topic != "s/x" || string(sw[2].Payload) != `{"n":2}` || sw[2].QoS != 1 ||
				sw[2].ClientCN != "emulated-device" || sw[2].RequestID == "" || sw[2].Listener != iotemu.ListenerPlain {
				t.Errorf("swallowed %+v, want the 3 messages, the last on s/x from the plain listener", sw)
			}

			// Back to normal.
			if err := s.SetMode(iotemu.Mode{}); err != nil {
				t.Fatal(err)
			}
			resp, err := do(t, t.Context(), rawClient(t, s.PKI().ClientTLSConfig(true)), s.ALPNAddr(), request{path: "/topics/s%2Fx", body: []byte("{}")})
			if err != nil || resp.status != 200 {
				t.Fatalf("after going back to normal: %+v, %v", resp, err)
			}
			if n, r := len(s.Messages()), s.Requests(); n != 1 || r != 4 {
				t.Errorf("%d messages of %d requests, want 1 of 4", n, r)
			}
		})
	}
}

// Faults queued with FailNext and LoseReplies wait for the Normal mode;
// Rates too.
func TestModeKeepsFaults(t *testing.T) {
	s := start(t, iotemu.Options{Rates: iotemu.Rates{Status: map[int]float64{429: 1}}})
	c := noRedirects(t, true, s)
	if err := s.SetRates(iotemu.Rates{}); err != nil {
		t.Fatal(err)
	}
	s.FailNext(503, 1)
	s.LoseReplies(1)
	if err := s.SetMode(iotemu.Mode{Answer: iotemu.HTML, Status: 404}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if r, err := post(t.Context(), c, s.ALPNAddr(), "/topics/a", "{}"); err != nil || r.status != 404 {
			t.Fatalf("in html=404 mode: %+v, %v", r, err)
		}
	}
	if err := s.SetMode(iotemu.Mode{}); err != nil {
		t.Fatal(err)
	}
	if r, err := post(t.Context(), c, s.ALPNAddr(), "/topics/a", "{}"); err != nil || r.status != 503 {
		t.Fatalf("first request back in normal mode: %+v, %v; want the queued 503", r, err)
	}
	if _, err := post(t.Context(), c, s.ALPNAddr(), "/topics/a", "{}"); err == nil {
		t.Fatal("second request back in normal mode got a reply, want the queued lost reply")
	}
	if r, err := post(t.Context(), c, s.ALPNAddr(), "/topics/a", "{}"); err != nil || r.status != 200 {
		t.Fatalf("third request: %+v, %v", r, err)
	}
	if err := s.SetRates(iotemu.Rates{Status: map[int]float64{429: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMode(iotemu.Mode{Answer: iotemu.Redirect}); err != nil {
		t.Fatal(err)
	}
	if r, err := post(t.Context(), c, s.ALPNAddr(), "/topics/a", "{}"); err != nil || r.status != 301 {
		t.Fatalf("redirect mode with a 429 rate of 1: %+v, %v; want 301", r, err)
	}
	if err := s.SetMode(iotemu.Mode{}); err != nil {
		t.Fatal(err)
	}
	if r, err := post(t.Context(), c, s.ALPNAddr(), "/topics/a", "{}"); err != nil || r.status != 429 {
		t.Fatalf("back to normal with a 429 rate of 1: %+v, %v; want 429", r, err)
	}
}

func TestStall(t *testing.T) {
	t.Run("answered when the mode changes", func(t *testing.T) {
		s := start(t, iotemu.Options{})
		c := noRedirects(t, true, s)
		if err := s.SetMode(iotemu.Mode{Answer: iotemu.Stall}); err != nil {
			t.Fatal(err)
		}
		type result struct {
			r   rawReply
			err error
		}
		done := make(chan result, 1)
		go func() {
			r, err := post(t.Context(), c, s.ALPNAddr(), "/topics/a", `{"stalled":true}`)
			done <- result{r, err}
		}()
		if err := s.WaitRequests(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		// The stalled request is answered in the new mode: AWS's 200.
		if err := s.SetMode(iotemu.Mode{}); err != nil {
			t.Fatal(err)
		}
		res := <-done
		if res.err != nil || res.r.status != 200 {
			t.Fatalf("stalled request after going back to normal: %+v, %v", res.r, res.err)
		}
		if msgs := s.Messages(); len(msgs) != 1 || !bytes.Equal(msgs[0].Payload, []byte(`{"stalled":true}`)) {
			t.Errorf("messages %+v, want the stalled one, body intact", msgs)
		}
	})
	t.Run("until the client gives up", func(t *testing.T) {
		s := start(t, iotemu.Options{})
		c := noRedirects(t, true, s)
		if err := s.SetMode(iotemu.Mode{Answer: iotemu.Stall}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			if s.WaitRequests(ctx, 1) == nil {
				cancel()
			}
		}()
		if r, err := post(ctx, c, s.ALPNAddr(), "/topics/a", "{}"); !errors.Is(err, context.Canceled) {
			t.Fatalf("stalled request: %+v, %v; want no answer until cancelled", r, err)
		}
		if n := len(s.Messages()); n != 0 {
			t.Errorf("%d messages, want none", n)
		}
	})
	t.Run("until Close", func(t *testing.T) {
		s := start(t, iotemu.Options{})
		c := noRedirects(t, true, s)
		if err := s.SetMode(iotemu.Mode{Answer: iotemu.Stall}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := post(t.Context(), c, s.ALPNAddr(), "/topics/a", "{}")
			done <- err
		}()
		if err := s.WaitRequests(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		s.Close() // must not wait for the stalled request
		if err := <-done; err == nil {
			t.Error("stalled request got an answer from a closed emulator")
		}
	})
}

func TestWaitRequests(t *testing.T) {
	s := start(t, iotemu.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.WaitRequests(ctx, 1); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "have 0") {
		t.Errorf("WaitRequests with a cancelled context: %v", err)
	}
	if err := s.WaitRequests(ctx, 0); err != nil {
		t.Errorf("WaitRequests(0): %v", err)
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    iotemu.Mode
		str     string
		wantErr string
	}{
		{"normal", iotemu.Mode{}, "normal", ""},
		{"stall", iotemu.Mode{Answer: iotemu.Stall}, "stall", ""},
		{"html", iotemu.Mode{Answer: iotemu.HTML}, "html=200", ""},
		{"HTML=404", iotemu.Mode{Answer: iotemu.HTML, Status: 404}, "html=404", ""},
		{"redirect", iotemu.Mode{Answer: iotemu.Redirect}, "redirect=301," + iotemu.DefaultLocation, ""},
		{"redirect=308", iotemu.Mode{Answer: iotemu.Redirect, Status: 308}, "redirect=308," + iotemu.DefaultLocation, ""},
		{"redirect=307,https://x.invalid/a?b=c", iotemu.Mode{Answer: iotemu.Redirect, Status: 307, Location: "https://x.invalid/a?b=c"}, "redirect=307,https://x.invalid/a?b=c", ""},
		{"redirect=200", iotemu.Mode{}, "", "not 3xx"},
		{"html=101", iotemu.Mode{}, "", "not 200-599"},
		{"html=abc", iotemu.Mode{}, "", "not a number"},
		{"html=404,https://x/", iotemu.Mode{}, "", "only redirect takes a location"},
		{"stall=1", iotemu.Mode{}, "", "takes no argument"},
		{"teapot", iotemu.Mode{}, "", "want normal, stall"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := iotemu.ParseMode(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMode(%q) = %+v, %v; want an error with %q", tt.in, m, err, tt.wantErr)
				}
				return
			}
			if err != nil || m != tt.want || m.String() != tt.str {
				t.Fatalf("ParseMode(%q) = %+v (%s), %v; want %+v (%s)", tt.in, m, m, err, tt.want, tt.str)
			}
			// What String writes, ParseMode reads.
			if again, err := iotemu.ParseMode(m.String()); err != nil || again.String() != tt.str {
				t.Errorf("ParseMode(%q) = %+v, %v", m.String(), again, err)
			}
		})
	}
}

func TestSetModeErrors(t *testing.T) {
	s := start(t, iotemu.Options{})
	for _, m := range []iotemu.Mode{
		{Answer: iotemu.Redirect, Status: 200},
		{Answer: iotemu.HTML, Status: 100},
		{Answer: iotemu.HTML, Status: 600},
		{Answer: iotemu.Answer(42)},
	} {
		if err := s.SetMode(m); err == nil {
			t.Errorf("SetMode(%+v) accepted", m)
		}
	}
	if m := s.Mode(); m != (iotemu.Mode{}) {
		t.Errorf("mode %+v after refused changes, want Normal", m)
	}
	if err := s.SetMode(iotemu.Mode{Answer: iotemu.HTML, Status: 404}); err != nil {
		t.Fatal(err)
	}
	if m := s.Mode(); m.Answer != iotemu.HTML || m.Status != 404 || m.Title != "404 Not Found" {
		t.Errorf("Mode() = %+v, want html 404 with its default title", m)
	}
}

func TestStartWithMode(t *testing.T) {
	s := start(t, iotemu.Options{Mode: iotemu.Mode{Answer: iotemu.HTML, Status: 404}})
	if r, err := post(t.Context(), noRedirects(t, true, s), s.ALPNAddr(), "/topics/a", "{}"); err != nil || r.status != 404 {
		t.Fatalf("first request: %+v, %v; want the initial mode's 404", r, err)
	}
	if _, err := iotemu.Start(iotemu.Options{Mode: iotemu.Mode{Answer: iotemu.Redirect, Status: 200}}); err == nil || !strings.Contains(err.Error(), "not 3xx") {
		t.Errorf("Start with a redirect of 200: %v", err)
	}
}
