// Package iotemu emulates the AWS IoT Core HTTPS endpoint for tests and
// demos, in the manner of net/http/httptest: publishing (POST /topics/...)
// and the Device Shadow REST API (/things/<thing>/shadow), mutual TLS, the
// 443-style listener that needs the ALPN name x-amzn-http-ca, the
// 8443-style listener that does not, AWS-shaped replies, and fault
// injection.
package iotemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Listener names, as reported in Message.Listener and ClientHello.Listener.
const (
	ListenerALPN  = "alpn"  // 443-style
	ListenerPlain = "plain" // 8443-style
)

// Off disables a listener in Options.
const Off = "off"

const (
	defaultAddr      = "127.0.0.1:0"
	handshakeTimeout = 10 * time.Second
)

// Options configures Start. The zero value starts both listeners on
// loopback ports chosen by the kernel with an in-memory PKI.
type Options struct {
	// ALPNAddr is the 443-style listener: it authenticates with the client
	// certificate only when the client offers x-amzn-http-ca, and answers
	// everything else 403 Missing Authentication Token, as AWS does.
	// PlainAddr is the 8443-style listener, where ALPN plays no part.
	// "" means "127.0.0.1:0"; Off ("off") means the listener is not started.
	ALPNAddr, PlainAddr string
	PKI                 *PKI      // nil: a fresh in-memory PKI
	Record              io.Writer // JSON lines of accepted messages; may be nil
	Logger              *slog.Logger
	Seed                int64 // seeds request ids and probabilistic faults
	// OnMessage, if set, is called for each accepted message before the
	// reply is sent.
	OnMessage func(Message)
	// IdleTimeout closes kept-alive connections idle that long; 0 never.
	IdleTimeout time.Duration
	// Initial faults, as set by SetRates and SetDelay.
	Rates Rates
	Delay time.Duration
	// Mode is the initial answer mode, as set by SetMode.
	Mode Mode
}

// Message is one accepted publish.
type Message struct {
	Topic     string
	QoS       int
	Payload   []byte
	Received  time.Time
	RequestID string
	ALPN      string // negotiated protocol, "" if none
	Listener  string // ListenerALPN or ListenerPlain
	RawPath   string // the request path as sent, still percent-encoded
	ClientCN  string // common name of the client certificate

	// Optional MQTT 5 properties from the query and headers.
	Retain          bool
	ContentType     string
	ResponseTopic   string
	MessageExpiry   time.Duration // 0 when not given
	PayloadFormat   string
	CorrelationData []byte
	UserProperties  []map[string]string
}

// ClientHello is what a client offered in a TLS handshake.
type ClientHello struct {
	Listener   string
	ServerName string   // SNI, "" when not sent (e.g. dialling an IP)
	ALPN       []string // offered protocols, nil when none
}

// Server is a running emulator.
type Server struct {
	opts Options
	pki  *PKI
	log  *slog.Logger
	http *http.Server

	serving  sync.WaitGroup // Serve goroutines
	connsWG  sync.WaitGroup // connection goroutines, from StateNew to StateClosed
	handlers sync.WaitGroup // in-flight requests; Add only under mu while !closed

	recordMu sync.Mutex // serialises writes to opts.Record

	mu        sync.Mutex
	closed    bool
	down      bool
	slots     []*slot
	conns     map[*conn]*connTrack
	messages  []Message
	arrived   chan struct{} // closed and replaced when a message arrives
	hellos    []ClientHello
	counts    counts
	failQueue []int
	lose      int
	delay     time.Duration
	rates     Rates
	statuses  []int // keys of rates.Status, sorted, for a deterministic draw
	faultRand *rand.Rand
	idRand    *rand.Rand

	requested chan struct{} // closed and replaced when a request arrives
	mode      Mode
	swallowed []Message // see Swallowed
	// modeChanged is closed and replaced by SetMode, and closed by Close:
	// it wakes stalled requests.
	modeChanged chan struct{}

	shadows       map[shadowKey]*shadowDoc // see shadow.go
	shadowChanged chan struct{}            // closed and replaced when a shadow changes
	shadowDenied  bool                     // see SetShadowDenied
}

type counts struct {
	connections, handshakes, handshakeFailures, requests int
	shadowRequests                                       int
}

// slot is one listener's address, kept so that SetDown(false) can listen on
// the same address again.
type slot struct {
	name string
	addr string
	ln   net.Listener // nil while down
}

type connTrack struct {
	state http.ConnState
	// idleClosed, when CloseIdle waits for this connection, is closed once
	// the connection has been closed on becoming idle (or closed anyway).
	idleClosed chan struct{}
}

// Start starts the emulator.
func Start(opts Options) (*Server, error) {
	s := &Server{
		opts:      opts,
		pki:       opts.PKI,
		log:       opts.Logger,
		conns:     make(map[*conn]*connTrack),
		arrived:   make(chan struct{}),
		delay:     opts.Delay,
		faultRand: rand.New(rand.NewPCG(uint64(opts.Seed), 0x9e3779b97f4a7c15)),
		idRand:    rand.New(rand.NewPCG(uint64(opts.Seed), 0x2545f4914f6cdd1d)),

		requested:     make(chan struct{}),
		modeChanged:   make(chan struct{}),
		shadowChanged: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.pki == nil {
		p, err := NewPKI("")
		if err != nil {
			return nil, err
		}
		s.pki = p
	}
	if err := s.SetRates(opts.Rates); err != nil {
		return nil, err
	}
	if opts.Mode != (Mode{}) {
		if err := s.SetMode(opts.Mode); err != nil { // logs the mode
			return nil, err
		}
	}
	s.http = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       opts.IdleTimeout,
		ConnState:         s.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	for _, l := range []struct{ name, addr string }{{ListenerALPN, opts.ALPNAddr}, {ListenerPlain, opts.PlainAddr}} {
		if l.addr == Off {
			continue
		}
		if l.addr == "" {
			l.addr = defaultAddr
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("emulator %s listener: %w", l.name, err)
		}
		sl := &slot{name: l.name, addr: ln.Addr().String()}
		s.slots = append(s.slots, sl)
		s.serve(sl, ln)
	}
	if len(s.slots) == 0 {
		return nil, errors.New("emulator: both listeners are off")
	}
	return s, nil
}

// serve starts serving ln; the caller holds mu or has not published s yet.
func (s *Server) serve(sl *slot, ln net.Listener) {
	tl := &tlsListener{Listener: ln, s: s, name: sl.name}
	sl.ln = tl
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		err := s.http.Serve(tl)
		s.log.Debug("listener stopped", "listener", sl.name, "addr", sl.addr, "reason", err)
	}()
}

// Close stops the emulator, closes all connections and waits for in-flight
// requests. Messages stay readable.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.modeChanged) // stalled requests end
	s.modeChanged = make(chan struct{})
	var lns []net.Listener
	for _, sl := range s.slots {
		if sl.ln != nil {
			lns = append(lns, sl.ln)
			sl.ln = nil
		}
	}
	s.mu.Unlock()
	_ = s.http.Close()
	for _, ln := range lns {
		_ = ln.Close()
	}
	s.serving.Wait()
	s.connsWG.Wait()
	s.handlers.Wait()
}

// ALPNAddr returns the 443-style listener's host:port, "" if not started.
func (s *Server) ALPNAddr() string { return s.addr(ListenerALPN) }

// PlainAddr returns the 8443-style listener's host:port, "" if not started.
func (s *Server) PlainAddr() string { return s.addr(ListenerPlain) }

func (s *Server) addr(name string) string {
	for _, sl := range s.slots { // slots never change after Start
		if sl.name == name {
			return sl.addr
		}
	}
	return ""
}

// PKI returns the emulator's PKI.
func (s *Server) PKI() *PKI { return s.pki }

// Messages returns a copy of the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// Wait blocks until at least n messages have been accepted and returns
// them, or returns ctx's error.
func (s *Server) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if len(s.messages) >= n {
			msgs := slices.Clone(s.messages)
			s.mu.Unlock()
			return msgs, nil
		}
		arrived, got := s.arrived, len(s.messages)
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %d messages (have %d): %w", n, got, ctx.Err())
		}
	}
}

// Handshakes counts completed TLS handshakes.
func (s *Server) Handshakes() int { return s.count(func(c counts) int { return c.handshakes }) }

// HandshakeFailures counts failed TLS handshakes (e.g. untrusted clients).
func (s *Server) HandshakeFailures() int {
	return s.count(func(c counts) int { return c.handshakeFailures })
}

// Connections counts accepted TCP connections.
func (s *Server) Connections() int { return s.count(func(c counts) int { return c.connections }) }

// Requests counts HTTP requests received, whatever the answer.
func (s *Server) Requests() int { return s.count(func(c counts) int { return c.requests }) }

func (s *Server) count(f func(counts) int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f(s.counts)
}

// ClientHellos returns what clients offered in each TLS handshake, in order.
func (s *Server) ClientHellos() []ClientHello {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hellos)
}

// CloseIdle closes kept-alive connections, as a server's idle timeout does:
// idle (and not yet used) ones now, busy ones as soon as their current
// request is answered. It returns once all of them are closed, so that a
// client's next request cannot slip onto one of them; a request held up by
// SetDelay holds CloseIdle up as well.
func (s *Server) CloseIdle() {
	s.mu.Lock()
	var now []*conn
	var wait []chan struct{}
	for c, t := range s.conns {
		switch t.state {
		case http.StateIdle, http.StateNew:
			now = append(now, c)
		default:
			if t.idleClosed == nil {
				t.idleClosed = make(chan struct{})
			}
			wait = append(wait, t.idleClosed)
		}
	}
	s.mu.Unlock()
	for _, c := range now {
		s.log.Debug("closing idle connection", "listener", c.listener, "remote", c.raw.RemoteAddr())
		_ = c.Close()
	}
	for _, ch := range wait {
		<-ch
	}
}
