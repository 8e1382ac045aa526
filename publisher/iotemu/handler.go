package iotemu

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sensor-agent/sensor-agent/publisher"
)

// AWS error names (x-amzn-ErrorType) and default messages by status.
var errorNames = map[int]string{
	400: "InvalidRequestException",
	401: "UnauthorizedException",
	403: "ForbiddenException",
	404: "ResourceNotFoundException",
	405: "MethodNotAllowedException",
	409: "ConflictException",
	// 411 and 413 are undocumented for publish; names in the same style.
	411: "LengthRequiredException",
	413: "RequestEntityTooLargeException",
	415: "UnsupportedDocumentEncodingException",
	429: "ThrottlingException",
	500: "InternalFailureException",
	502: "BadGatewayException",
	503: "ServiceUnavailableException",
	504: "GatewayTimeoutException",
}

var errorMessages = map[int]string{
	401: "Unauthorized",
	403: "Forbidden",
	429: "Rate exceeded",
	500: "Internal failure",
	503: "Service unavailable",
}

// ErrorName returns the x-amzn-ErrorType name the emulator uses for status.
func ErrorName(status int) string {
	if n, ok := errorNames[status]; ok {
		return n
	}
	return strings.ReplaceAll(http.StatusText(status), " ", "") + "Exception"
}

func errorMessage(status int) string {
	if m, ok := errorMessages[status]; ok {
		return m
	}
	return http.StatusText(status)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := s.startRequest()
	if !ok {
		return
	}
	defer s.handlers.Done()

	c, _ := r.Context().Value(connKey{}).(*conn)
	if c == nil { // cannot happen: every conn comes from tlsListener
		http.Error(w, "no TLS connection", http.StatusInternalServerError)
		return
	}
	// Something in front of AWS answers before AWS would.
	if s.answerMode(w, r, id, c) {
		return
	}
	if status, message := s.frontDoor(c); status != 0 {
		if strings.HasPrefix(r.URL.EscapedPath(), "/things/") {
			s.failShadow(w, r, id, &shadowError{status: status, message: message})
		} else {
			s.fail(w, r, id, status, message)
		}
		return
	}
	if strings.HasPrefix(r.URL.EscapedPath(), "/things/") {
		s.serveShadow(w, r, id)
		return
	}
	msg, ok := s.checkRequest(w, r, id, c)
	if !ok || !s.readPayload(w, r, id, &msg) {
		return
	}
	msg.Received = time.Now()
	s.accept(msg)
	s.applyShadowTopic(msg)
	s.reply(w, r, id, msg.Topic)
}

// frontDoor judges the request as AWS does before routing it:
// authentication, then injected faults. It returns the refusal's status
// and message, or 0 to go on.
func (s *Server) frontDoor(c *conn) (status int, message string) {
	// Authentication comes first, as at AWS's front door: on 443 a
	// connection without x-amzn-http-ca is a SigV4 request without a
	// signature.
	if c.listener == ListenerALPN && c.tls.ConnectionState().NegotiatedProtocol != publisher.ALPNProtocol {
		return http.StatusForbidden, "Missing Authentication Token"
	}
	if status, ok := s.injectedStatus(); ok {
		return status, errorMessage(status)
	}
	return 0, ""
}

// startRequest counts a request and gives it its id; ok is false once
// the server is closed. When ok, the caller calls s.handlers.Done.
func (s *Server) startRequest() (id string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", false
	}
	s.handlers.Add(1)
	s.counts.requests++
	close(s.requested)
	s.requested = make(chan struct{})
	return s.newIDLocked(), true
}

// checkRequest judges a publish as AWS does before reading its body, once
// past the front door: the route, the method, the topic and the
// parameters. It answers a refused request itself (ok false).
func (s *Server) checkRequest(w http.ResponseWriter, r *http.Request, id string, c *conn) (msg Message, ok bool) {
	state := c.tls.ConnectionState()
	escaped, ok := strings.CutPrefix(r.URL.EscapedPath(), "/topics/")
	if !ok {
		// AWS's front door answers unknown routes 403 or 404; 404 is
		// chosen so that a wrong path is not mistaken for a policy denial.
		s.fail(w, r, id, http.StatusNotFound, "No route for "+r.URL.EscapedPath())
		return msg, false
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.fail(w, r, id, http.StatusMethodNotAllowed, "Method "+r.Method+" is not allowed on /topics")
		return msg, false
	}
	// The topic is one segment with '/' as %2F; raw slashes are accepted
	// too, as the service does.
	topic, err := url.PathUnescape(escaped)
	if err != nil {
		s.fail(w, r, id, http.StatusBadRequest, "invalid topic encoding: "+err.Error())
		return msg, false
	}
	if err := validateTopic(topic); err != nil {
		s.fail(w, r, id, http.StatusBadRequest, err.Error())
		return msg, false
	}
	msg = Message{
		Topic:     topic,
		RequestID: id,
		ALPN:      state.NegotiatedProtocol,
		Listener:  c.listener,
		RawPath:   r.URL.EscapedPath(),
	}
	if len(state.PeerCertificates) > 0 {
		msg.ClientCN = state.PeerCertificates[0].Subject.CommonName
	}
	if err := parseParams(r, &msg); err != nil {
		s.fail(w, r, id, http.StatusBadRequest, err.Error())
		return msg, false
	}
	return msg, true
}

// readPayload reads the body into msg.Payload, or answers why it is
// refused (false).
func (s *Server) readPayload(w http.ResponseWriter, r *http.Request, id string, msg *Message) bool {
	// Strictness the service may not have: a chunked body is refused so
	// that a client that forgets Content-Length is caught.
	if r.ContentLength < 0 {
		s.fail(w, r, id, http.StatusLengthRequired, "Content-Length is required")
		return false
	}
	if r.ContentLength > publisher.MaxPayload {
		// Not reading the body: net/http drains a small excess to keep the
		// connection, or closes it after the reply.
		s.fail(w, r, id, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("payload of %d bytes exceeds the %d-byte limit", r.ContentLength, publisher.MaxPayload))
		return false
	}
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		s.log.Debug("reading request body failed", "request_id", id, "err", err)
		return false
	}
	if msg.PayloadFormat == "UTF8_DATA" && !utf8.Valid(payload) {
		s.fail(w, r, id, http.StatusBadRequest, "payload is not valid UTF-8 but the payload format indicator says UTF8_DATA")
		return false
	}
	msg.Payload = payload
	return true
}

// reply answers an accepted publish 200, or loses the reply when the
// faults say so.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, id, topic string) {
	if s.loseReply() {
		s.log.Info("losing reply", "request_id", id, "topic", topic)
		s.pause(r.Context())
		if hj, ok := w.(http.Hijacker); ok {
			if nc, _, err := hj.Hijack(); err == nil {
				_ = nc.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	s.pause(r.Context())
	s.writeJSON(w, id, http.StatusOK, "OK")
}

// fail answers with an AWS-shaped error after the configured delay.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, id string, status int, message string) {
	s.log.Info("request refused", "request_id", id, "method", r.Method, "path", r.URL.EscapedPath(), "status", status, "message", message)
	s.pause(r.Context())
	w.Header()["x-amzn-ErrorType"] = []string{ErrorName(status) + ":"}
	s.writeJSON(w, id, status, message)
}

func (s *Server) writeJSON(w http.ResponseWriter, id string, status int, message string) {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
		TraceID string `json:"traceId"`
	}{message, id})
	writeBody(w, id, status, body)
}

// accept stores msg, wakes waiters, records it and calls OnMessage.
func (s *Server) accept(msg Message) {
	s.mu.Lock()
	s.messages = append(s.messages, msg)
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
	s.log.Debug("message accepted", "request_id", msg.RequestID, "topic", msg.Topic, "qos", msg.QoS, "bytes", len(msg.Payload))
	if s.opts.Record != nil {
		s.record(msg)
	}
	if s.opts.OnMessage != nil {
		s.opts.OnMessage(msg)
	}
}

// RecordLine is one JSON line written to Options.Record.
type RecordLine struct {
	Time      time.Time `json:"time"`
	Topic     string    `json:"topic"`
	QoS       int       `json:"qos"`
	RequestID string    `json:"request_id"`
	// Payload is the payload itself when it is valid JSON (compacted to
	// keep one line per message), else a base64 string.
	Payload json.RawMessage `json:"payload"`
}

// NewRecordLine builds the record of msg.
func NewRecordLine(msg Message) RecordLine {
	line := RecordLine{Time: msg.Received, Topic: msg.Topic, QoS: msg.QoS, RequestID: msg.RequestID}
	var compact bytes.Buffer
	if json.Valid(msg.Payload) && json.Compact(&compact, msg.Payload) == nil {
		line.Payload = compact.Bytes()
	} else {
		line.Payload, _ = json.Marshal(base64.StdEncoding.EncodeToString(msg.Payload))
	}
	return line
}

func (s *Server) record(msg Message) {
	b, err := json.Marshal(NewRecordLine(msg))
	if err != nil {
		s.log.Error("encode record", "request_id", msg.RequestID, "err", err)
		return
	}
	b = append(b, '\n')
	s.recordMu.Lock()
	defer s.recordMu.Unlock()
	if _, err := s.opts.Record.Write(b); err != nil {
		s.log.Error("write record", "request_id", msg.RequestID, "err", err)
	}
}

// newIDLocked returns a UUID-shaped id from the seeded source, so runs with
// the same seed and order get the same ids.
func (s *Server) newIDLocked() string {
	a, b := s.idRand.Uint64(), s.idRand.Uint64()
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x",
		a>>32, (a>>16)&0xffff, 0x4000|(a&0x0fff), 0x8000|(b>>48)&0x3fff, b&0xffffffffffff)
}

// parseParams validates the documented optional query parameters and MQTT 5
// headers into msg. Unknown query parameters are ignored.
func parseParams(r *http.Request, msg *Message) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fmt.Errorf("invalid query string: %w", err)
	}
	for name, vs := range q {
		if len(vs) > 1 {
			return fmt.Errorf("parameter %s is given %d times", name, len(vs))
		}
	}
	if v, ok := q["qos"]; ok {
		switch v[0] {
		case "0":
		case "1":
			msg.QoS = 1
		default:
			return fmt.Errorf("invalid qos %q: must be 0 or 1", v[0])
		}
	}
	if v, ok := q["retain"]; ok {
		switch v[0] {
		case "true":
			msg.Retain = true
		case "false":
		default:
			return fmt.Errorf("invalid retain %q: must be true or false", v[0])
		}
	}
	msg.ContentType = q.Get("contentType")
	if v, ok := q["responseTopic"]; ok {
		if err := publisher.ValidateTopic(v[0]); err != nil {
			return fmt.Errorf("invalid responseTopic: %w", err)
		}
		msg.ResponseTopic = v[0]
	}
	if v, ok := q["messageExpiry"]; ok {
		secs, err := strconv.ParseUint(v[0], 10, 32)
		if err != nil {
			return fmt.Errorf("invalid messageExpiry %q: must be a number of seconds", v[0])
		}
		msg.MessageExpiry = time.Duration(secs) * time.Second
	}
	if v := r.Header.Get("x-amz-mqtt5-payload-format-indicator"); v != "" {
		if v != "UNSPECIFIED_BYTES" && v != "UTF8_DATA" {
			return fmt.Errorf("invalid x-amz-mqtt5-payload-format-indicator %q: must be UNSPECIFIED_BYTES or UTF8_DATA", v)
		}
		msg.PayloadFormat = v
	}
	if v := r.Header.Get("x-amz-mqtt5-correlation-data"); v != "" {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return errors.New("invalid x-amz-mqtt5-correlation-data: not base64")
		}
		msg.CorrelationData = b
	}
	if v := r.Header.Get("x-amz-mqtt5-user-properties"); v != "" {
		props, err := parseUserProperties(v)
		if err != nil {
			return fmt.Errorf("invalid x-amz-mqtt5-user-properties: %w", err)
		}
		msg.UserProperties = props
	}
	return nil
}

// parseUserProperties decodes base64 of a JSON array of one-key objects.
func parseUserProperties(v string) ([]map[string]string, error) {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, errors.New("not base64")
	}
	var props []map[string]string
	if err := json.Unmarshal(b, &props); err != nil {
		return nil, errors.New(`not a JSON array of {"key":"value"} objects`)
	}
	for i, p := range props {
		if len(p) != 1 {
			return nil, fmt.Errorf("element %d has %d keys, want 1", i, len(p))
		}
	}
	return props, nil
}
