package iotemu

import (
	"context"
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

// The Device Shadow REST API: GET, POST and DELETE on
// /things/<thing>/shadow[?name=<shadow>], on both listeners, with the same
// authentication as publishing. Errors carry x-amzn-ErrorType, as publish
// errors do, and AWS's shadow error body {"code":N,"message":"..."}. The
// document model is in shadowdoc.go.

type shadowKey struct{ thing, name string }

func (k shadowKey) String() string {
	if k.name == "" {
		return k.thing
	}
	return k.thing + "~" + k.name
}

// serveShadow answers a request on /things/...; the front door (mode,
// authentication, injected faults) has let it through.
func (s *Server) serveShadow(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	s.counts.shadowRequests++
	s.mu.Unlock()
	key, err := parseShadowPath(r)
	if err == nil && s.shadowDeniedNow() {
		err = &shadowError{status: http.StatusForbidden, message: "Forbidden"}
	}
	if err != nil {
		s.failShadow(w, r, id, err)
		return
	}
	var body []byte
	switch r.Method {
	case http.MethodGet:
		body, err = s.getShadow(key)
	case http.MethodPost:
		var req []byte
		if req, err = readShadowBody(r); err == nil {
			body, err = s.updateShadow(key, req)
		}
	case http.MethodDelete:
		body, err = s.deleteShadow(key)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		err = &shadowError{status: http.StatusMethodNotAllowed, message: "Method " + r.Method + " is not allowed on /things/" + key.thing + "/shadow"}
	}
	if err != nil {
		s.failShadow(w, r, id, err)
		return
	}
	s.log.Info("shadow request", "request_id", id, "method", r.Method, "shadow", key.String())
	s.pause(r.Context())
	writeBody(w, id, http.StatusOK, body)
}

// parseShadowPath returns the shadow a request is about.
func parseShadowPath(r *http.Request) (shadowKey, error) {
	rest, _ := strings.CutPrefix(r.URL.EscapedPath(), "/things/")
	escaped, ok := strings.CutSuffix(rest, "/shadow")
	if !ok || escaped == "" || strings.Contains(escaped, "/") {
		return shadowKey{}, &shadowError{status: http.StatusNotFound, message: "No route for " + r.URL.EscapedPath()}
	}
	thing, err := url.PathUnescape(escaped)
	if err != nil || !publisher.ValidThingName(thing) {
		return shadowKey{}, badShadow("Invalid thing name: must be 1-128 characters of [a-zA-Z0-9:_-]")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return shadowKey{}, badShadow("Invalid query string")
	}
	key := shadowKey{thing: thing}
	if names, ok := q["name"]; ok {
		if len(names) != 1 || !publisher.ValidShadowName(names[0]) {
			return shadowKey{}, badShadow("Invalid shadow name: must be 1-64 characters of [$a-zA-Z0-9:_-]")
		}
		key.name = names[0]
	}
	return key, nil
}

// readShadowBody reads an update's body, refusing what the service would
// before parsing it.
func readShadowBody(r *http.Request) ([]byte, error) {
	if r.ContentLength < 0 {
		// As for publish: a client that forgets Content-Length is caught.
		return nil, &shadowError{status: http.StatusLengthRequired, message: "Content-Length is required"}
	}
	if r.ContentLength > publisher.MaxPayload {
		return nil, &shadowError{status: http.StatusRequestEntityTooLarge, message: "The payload exceeds the maximum size allowed"}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if !utf8.Valid(body) {
		return nil, &shadowError{status: http.StatusUnsupportedMediaType, message: "Unsupported documented encoding; supported encoding is UTF-8"}
	}
	return body, nil
}

func noShadow(key shadowKey) error {
	// AWS names the thing for a classic shadow, the shadow's name for a
	// named one.
	name := key.thing
	if key.name != "" {
		name = key.name
	}
	return &shadowError{status: http.StatusNotFound, message: "No shadow exists with name: '" + name + "'"}
}

func (s *Server) getShadow(key shadowKey) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.shadows[key]
	if d == nil || !d.exists {
		return nil, noShadow(key)
	}
	return json.Marshal(d.document(time.Now().Unix()))
}

func (s *Server) updateShadow(key shadowKey, req []byte) ([]byte, error) {
	u, err := parseShadowUpdate(req)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.shadows[key]
	if d == nil {
		d = &shadowDoc{}
	}
	resp, err := d.apply(u, time.Now().Unix())
	if err != nil {
		return nil, err
	}
	if s.shadows == nil {
		s.shadows = make(map[shadowKey]*shadowDoc)
	}
	s.shadows[key] = d
	s.shadowChangedLocked()
	return json.Marshal(resp)
}

func (s *Server) deleteShadow(key shadowKey) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.shadows[key]
	if d == nil || !d.exists {
		return nil, noShadow(key)
	}
	*d = shadowDoc{version: d.version} // the tombstone keeps the version
	s.shadowChangedLocked()
	return json.Marshal(struct {
		Version   int64 `json:"version"`
		Timestamp int64 `json:"timestamp"`
	}{d.version, time.Now().Unix()})
}

func (s *Server) shadowChangedLocked() {
	close(s.shadowChanged)
	s.shadowChanged = make(chan struct{})
}

// failShadow answers a shadow request with AWS's shadow error.
func (s *Server) failShadow(w http.ResponseWriter, r *http.Request, id string, err error) {
	se, ok := errors.AsType[*shadowError](err)
	if !ok {
		s.log.Debug("shadow request failed", "request_id", id, "err", err)
		se = &shadowError{status: http.StatusInternalServerError, message: "Internal service failure"}
	}
	s.log.Info("shadow request refused", "request_id", id, "method", r.Method, "path", r.URL.EscapedPath(), "status", se.status, "message", se.message)
	s.pause(r.Context())
	w.Header()["x-amzn-ErrorType"] = []string{ErrorName(se.status) + ":"}
	body, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{se.status, se.message})
	writeBody(w, id, se.status, body)
}

// writeBody answers with a JSON body and the headers AWS IoT sends with
// every answer (publish's and the shadow's).
func writeBody(w http.ResponseWriter, id string, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h["x-amzn-RequestId"] = []string{id}
	if h.Get("Connection") == "" {
		h.Set("Connection", "keep-alive")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// shadowTopic parses a shadow topic that may be published to:
// $aws/things/<thing>/shadow[/name/<shadow>]/update, /get or /delete. ok
// is false for any other topic.
func shadowTopic(topic string) (key shadowKey, op string, ok bool) {
	rest, ok := strings.CutPrefix(topic, "$aws/things/")
	if !ok {
		return key, "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 3 && parts[1] == "shadow":
		key, op = shadowKey{thing: parts[0]}, parts[2]
	case len(parts) == 5 && parts[1] == "shadow" && parts[2] == "name":
		key, op = shadowKey{thing: parts[0], name: parts[3]}, parts[4]
		if !publisher.ValidShadowName(key.name) {
			return key, "", false
		}
	default:
		return key, "", false
	}
	if !publisher.ValidThingName(key.thing) || (op != "update" && op != "get" && op != "delete") {
		return key, "", false
	}
	return key, op, true
}

// validateTopic is publisher.ValidateTopic, plus the shadow topics AWS
// takes publishes to.
func validateTopic(topic string) error {
	if _, _, ok := shadowTopic(topic); ok {
		return nil
	}
	return publisher.ValidateTopic(topic)
}

// applyShadowTopic applies an accepted publish to a shadow topic, as AWS
// does: an update or a delete changes the shadow. Over MQTT AWS answers
// on .../accepted or .../rejected, which HTTPS cannot receive: a refusal
// is only logged, and get does nothing.
func (s *Server) applyShadowTopic(msg Message) {
	key, op, ok := shadowTopic(msg.Topic)
	if !ok {
		return
	}
	var err error
	switch op {
	case "update":
		_, err = s.updateShadow(key, msg.Payload)
	case "delete":
		_, err = s.deleteShadow(key)
	}
	if err != nil {
		s.log.Info("shadow update by publish rejected", "request_id", msg.RequestID, "topic", msg.Topic, "err", err)
	}
}

// ShadowRequests counts requests to /things/..., whatever the answer.
func (s *Server) ShadowRequests() int {
	return s.count(func(c counts) int { return c.shadowRequests })
}

// Shadow returns the shadow document as GET answers it, and whether the
// shadow exists; name "" is the classic shadow.
func (s *Server) Shadow(thing, name string) ([]byte, bool) {
	b, err := s.getShadow(shadowKey{thing, name})
	return b, err == nil
}

// UpdateShadow updates a shadow as POST does (as the AWS CLI's
// update-thing-shadow would) and returns the accepted document. A refusal
// is an error that says its status and AWS's message.
func (s *Server) UpdateShadow(thing, name string, doc []byte) ([]byte, error) {
	b, err := s.updateShadow(shadowKey{thing, name}, doc)
	if se, ok := errors.AsType[*shadowError](err); ok {
		return nil, fmt.Errorf("update shadow %s: %d %s", shadowKey{thing, name}, se.status, se.message)
	}
	return b, err
}

// WaitShadow blocks until the shadow exists with at least version and
// returns its document, or returns ctx's error.
func (s *Server) WaitShadow(ctx context.Context, thing, name string, version int64) ([]byte, error) {
	key := shadowKey{thing, name}
	for {
		s.mu.Lock()
		d, changed := s.shadows[key], s.shadowChanged
		if d != nil && d.exists && d.version >= version {
			b, err := json.Marshal(d.document(time.Now().Unix()))
			s.mu.Unlock()
			return b, err
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for shadow %s version %d: %w", key, version, ctx.Err())
		}
	}
}

// SetShadowDenied makes the emulator answer every shadow request 403
// ForbiddenException, as AWS does when the certificate's policy allows
// publishing but not the shadow actions; publishes are not affected.
func (s *Server) SetShadowDenied(denied bool) {
	s.mu.Lock()
	s.shadowDenied = denied
	s.mu.Unlock()
}

func (s *Server) shadowDeniedNow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shadowDenied
}
