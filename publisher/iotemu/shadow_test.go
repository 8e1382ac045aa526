package iotemu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

type shadowResp struct {
	status    int
	errorType string
	requestID string
	body      []byte
}

func shadowDo(t *testing.T, c *http.Client, addr, method, path, query, body string) shadowResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, "https://"+addr+"/", rd)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque, req.URL.RawQuery = path, query
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return shadowResp{resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), resp.Header.Get("x-amzn-RequestId"), raw}
}

// normalize decodes a shadow answer and replaces every "timestamp" number
// with 0 after checking that it is the current time in epoch seconds.
func normalize(t *testing.T, raw []byte, from, to int64) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("answer %s is not JSON: %v", raw, err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if k == "timestamp" {
					n, err := e.(json.Number).Int64()
					if err != nil || n < from || n > to {
						t.Errorf("timestamp %v in %s: want epoch seconds in [%d, %d]", e, raw, from, to)
					}
					x[k] = json.Number("0")
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return v
}

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("test document %s: %v", s, err)
	}
	return v
}

// TestShadowDocumentedExamples plays AWS's documented shadow exchanges in
// order on one thing's classic and named shadows (the developer guide's
// "Device Shadow service documents" and "Device Shadow error messages"):
// timestamps are checked to be now and then compared as 0.
func TestShadowDocumentedExamples(t *testing.T) {
	s := start(t, iotemu.Options{})
	c := rawClient(t, s.PKI().ClientTLSConfig(true))
	const path = "/things/pi-1/shadow"
	big := `{"state":{"reported":{"blob":"` + strings.Repeat("x", iotemu.MaxShadowState) + `"}}}`
	half := strings.Repeat("y", iotemu.MaxShadowState/2)
	deep := `{"state":{"reported":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}`
	deepOK := `{"state":{"reported":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}}`
	tests := []struct {
		name, method, query, body string
		wantStatus                int
		wantType                  string // x-amzn-ErrorType
		want                      string // the answer, timestamps as 0
	}{
		{name: "get before any update", method: "GET",
			wantStatus: 404, wantType: "ResourceNotFoundException:", want: `{"code":404,"message":"No shadow exists with name: 'pi-1'"}`},
		{name: "request state document with clientToken", method: "POST",
			body:       `{"state":{"desired":{"color":"RED"},"reported":{"color":"GREEN"}},"clientToken":"UniqueClientToken"}`,
			wantStatus: 200,
			want: `{"state":{"desired":{"color":"RED"},"reported":{"color":"GREEN"}},
				"metadata":{"desired":{"color":{"timestamp":0}},"reported":{"color":{"timestamp":0}}},
				"version":1,"timestamp":0,"clientToken":"UniqueClientToken"}`},
		{name: "get: desired, reported and delta", method: "GET", wantStatus: 200,
			want: `{"state":{"desired":{"color":"RED"},"reported":{"color":"GREEN"},"delta":{"color":"RED"}},
				"metadata":{"desired":{"color":{"timestamp":0}},"reported":{"color":{"timestamp":0}}},
				"version":1,"timestamp":0}`},
		{name: "nested update merges", method: "POST",
			body:       `{"state":{"desired":{"lights":{"color":"RED","on":true},"engine":"ON"},"reported":{"lights":{"color":"GREEN","on":true},"engine":"ON","fuel":"FULL"}}}`,
			wantStatus: 200,
			want: `{"state":{"desired":{"lights":{"color":"RED","on":true},"engine":"ON"},"reported":{"lights":{"color":"GREEN","on":true},"engine":"ON","fuel":"FULL"}},
				"metadata":{"desired":{"lights":{"color":{"timestamp":0},"on":{"timestamp":0}},"engine":{"timestamp":0}},
					"reported":{"lights":{"color":{"timestamp":0},"on":{"timestamp":0}},"engine":{"timestamp":0},"fuel":{"timestamp":0}}},
				"version":2,"timestamp":0}`},
		{name: "delta: nested, equal keys and reported-only keys left out", method: "GET", wantStatus: 200,
			want: `{"state":{"desired":{"color":"RED","lights":{"color":"RED","on":true},"engine":"ON"},
					"reported":{"color":"GREEN","lights":{"color":"GREEN","on":true},"engine":"ON","fuel":"FULL"},
					"delta":{"color":"RED","lights":{"color":"RED"}}},
				"metadata":{"desired":{"color":{"timestamp":0},"lights":{"color":{"timestamp":0},"on":{"timestamp":0}},"engine":{"timestamp":0}},
					"reported":{"color":{"timestamp":0},"lights":{"color":{"timestamp":0},"on":{"timestamp":0}},"engine":{"timestamp":0},"fuel":{"timestamp":0}}},
				"version":2,"timestamp":0}`},
		{name: "stale version", method: "POST", body: `{"state":{"reported":{"color":"RED"}},"version":1}`,
			wantStatus: 409, wantType: "ConflictException:", want: `{"code":409,"message":"Version conflict"}`},
		{name: "null deletes keys, nested objects merge, arrays replace, current version", method: "POST",
			body:       `{"state":{"desired":{"color":null,"lights":null},"reported":{"color":"RED","lights":{"color":"RED"},"colors":["RED","GREEN"]}},"version":2}`,
			wantStatus: 200,
			want: `{"state":{"desired":{"color":null,"lights":null},"reported":{"color":"RED","lights":{"color":"RED"},"colors":["RED","GREEN"]}},
				"metadata":{"desired":{"color":{"timestamp":0},"lights":{"timestamp":0}},
					"reported":{"color":{"timestamp":0},"lights":{"color":{"timestamp":0}},"colors":[{"timestamp":0},{"timestamp":0}]}},
				"version":3,"timestamp":0}`},
		{name: "get: no delta when desired matches", method: "GET", wantStatus: 200,
			want: `{"state":{"desired":{"engine":"ON"},"reported":{"color":"RED","lights":{"color":"RED","on":true},"engine":"ON","fuel":"FULL","colors":["RED","GREEN"]}},
				"metadata":{"desired":{"engine":{"timestamp":0}},
					"reported":{"color":{"timestamp":0},"lights":{"color":{"timestamp":0},"on":{"timestamp":0}},"engine":{"timestamp":0},"fuel":{"timestamp":0},"colors":[{"timestamp":0},{"timestamp":0}]}},
				"version":3,"timestamp":0}`},
		{name: "desired section set to null", method: "POST", body: `{"state":{"desired":null}}`, wantStatus: 200,
			want: `{"state":{"desired":null},"metadata":{"desired":{"timestamp":0}},"version":4,"timestamp":0}`},
		{name: "array delta holds the whole desired array", method: "POST", body: `{"state":{"desired":{"colors":["RED","GREEN","BLUE"],"fuel":"FULL"}}}`, wantStatus: 200,
			want: `{"state":{"desired":{"colors":["RED","GREEN","BLUE"],"fuel":"FULL"}},
				"metadata":{"desired":{"colors":[{"timestamp":0},{"timestamp":0},{"timestamp":0}],"fuel":{"timestamp":0}}},"version":5,"timestamp":0}`},
		{name: "get with array delta", method: "GET", wantStatus: 200,
			want: `{"state":{"desired":{"colors":["RED","GREEN","BLUE"],"fuel":"FULL"},
					"reported":{"color":"RED","lights":{"color":"RED","on":true},"engine":"ON","fuel":"FULL","colors":["RED","GREEN"]},
					"delta":{"colors":["RED","GREEN","BLUE"]}},
				"metadata":{"desired":{"colors":[{"timestamp":0},{"timestamp":0},{"timestamp":0}],"fuel":{"timestamp":0}},
					"reported":{"color":{"timestamp":0},"lights":{"color":{"timestamp":0},"on":{"timestamp":0}},"engine":{"timestamp":0},"fuel":{"timestamp":0},"colors":[{"timestamp":0},{"timestamp":0}]}},
				"version":5,"timestamp":0}`},
		{name: "named shadow is separate", method: "GET", query: "name=sensor-agent",
			wantStatus: 404, wantType: "ResourceNotFoundException:", want: `{"code":404,"message":"No shadow exists with name: 'sensor-agent'"}`},
		{name: "named shadow update starts at version 1", method: "POST", query: "name=sensor-agent", body: `{"state":{"reported":{"ok":true}}}`,
			wantStatus: 200, want: `{"state":{"reported":{"ok":true}},"metadata":{"reported":{"ok":{"timestamp":0}}},"version":1,"timestamp":0}`},
		{name: "invalid JSON", method: "POST", body: `{"state":`, wantStatus: 400, wantType: "InvalidRequestException:",
			want: `{"code":400,"message":"Invalid JSON"}`},
		{name: "trailing data", method: "POST", body: `{"state":{}} {}`, wantStatus: 400, wantType: "InvalidRequestException:",
			want: `{"code":400,"message":"Invalid JSON"}`},
		{name: "missing state", method: "POST", body: `{"desired":{"a":1}}`, wantStatus: 400, wantType: "InvalidRequestException:",
			want: `{"code":400,"message":"Missing required node: state"}`},
		{name: "state not an object", method: "POST", body: `{"state":[1]}`, wantStatus: 400, wantType: "InvalidRequestException:",
			want: `{"code":400,"message":"State node must be an object"}`},
		{name: "desired not an object", method: "POST", body: `{"state":{"desired":5}}`, wantStatus: 400, wantType: "InvalidRequestException:",
			want: `{"code":400,"message":"Desired node must be an object"}`},
		{name: "reported not an object", method: "POST", body: `{"state":{"reported":"x"}}`, wantStatus: 400, wantType: "InvalidRequestException:",
			want: `{"code":400,"message":"Reported node must be an object"}`},
		{name: "invalid node", method: "POST", body: `{"state":{"delta":{"a":1}}}`, wantStatus: 400, wantType: "InvalidRequestException:",
			want: `{"code":400,"message":"State contains an invalid node"}`},
		{name: "invalid version", method: "POST", body: `{"state":{},"version":"5"}`, wantStatus: 400, wantType: "InvalidRequestException:",
			want: `{"code":400,"message":"Invalid version"}`},
		{name: "client token over 64 bytes", method: "POST", body: `{"state":{},"clientToken":"` + strings.Repeat("t", 65) + `"}`,
			wantStatus: 400, wantType: "InvalidRequestException:", want: `{"code":400,"message":"Invalid clientToken"}`},
		{name: "too deep", method: "POST", body: deep, wantStatus: 400, wantType: "InvalidRequestException:",
			want: `{"code":400,"message":"JSON contains too many levels of nesting; maximum is 6"}`},
		{name: "state over 8 KB", method: "POST", body: big, wantStatus: 413, wantType: "RequestEntityTooLargeException:",
			want: `{"code":413,"message":"The payload exceeds the maximum size allowed"}`},
		{name: "half the limit fits", method: "POST", query: "name=big", body: `{"state":{"reported":{"a":"` + half + `"}}}`, wantStatus: 200},
		{name: "merged state over 8 KB", method: "POST", query: "name=big", body: `{"state":{"desired":{"b":"` + half + `"}}}`,
			wantStatus: 413, wantType: "RequestEntityTooLargeException:", want: `{"code":413,"message":"The payload exceeds the maximum size allowed"}`},
		{name: "not UTF-8", method: "POST", body: "{\"state\":{\"reported\":{\"a\":\"\xff\"}}}", wantStatus: 415,
			wantType: "UnsupportedDocumentEncodingException:", want: `{"code":415,"message":"Unsupported documented encoding; supported encoding is UTF-8"}`},
		{name: "six levels fit", method: "POST", query: "name=deep", body: deepOK, wantStatus: 200},
		{name: "delete", method: "DELETE", wantStatus: 200, want: `{"version":5,"timestamp":0}`},
		{name: "get after delete", method: "GET",
			wantStatus: 404, wantType: "ResourceNotFoundException:", want: `{"code":404,"message":"No shadow exists with name: 'pi-1'"}`},
		{name: "delete again", method: "DELETE",
			wantStatus: 404, wantType: "ResourceNotFoundException:", want: `{"code":404,"message":"No shadow exists with name: 'pi-1'"}`},
		{name: "created again, the version goes on", method: "POST", body: `{"state":{"reported":{"a":1}}}`, wantStatus: 200,
			want: `{"state":{"reported":{"a":1}},"metadata":{"reported":{"a":{"timestamp":0}}},"version":6,"timestamp":0}`},
		{name: "state null clears both sections", method: "POST", body: `{"state":null}`, wantStatus: 200,
			want: `{"state":null,"metadata":{},"version":7,"timestamp":0}`},
		{name: "get an empty shadow", method: "GET", wantStatus: 200, want: `{"state":{},"metadata":{},"version":7,"timestamp":0}`},
		{name: "PUT", method: "PUT", body: `{}`, wantStatus: 405, wantType: "MethodNotAllowedException:",
			want: `{"code":405,"message":"Method PUT is not allowed on /things/pi-1/shadow"}`},
		{name: "bad shadow name", method: "GET", query: "name=a%2Fb", wantStatus: 400, wantType: "InvalidRequestException:",
			want: `{"code":400,"message":"Invalid shadow name: must be 1-64 characters of [$a-zA-Z0-9:_-]"}`},
	}
	for _, tt := range tests {
		from := time.Now().Unix()
		r := shadowDo(t, c, s.ALPNAddr(), tt.method, path, tt.query, tt.body)
		to := time.Now().Unix()
		if r.status != tt.wantStatus || r.errorType != tt.wantType || r.requestID == "" {
			t.Fatalf("%s: %d %q (request id %q) %s, want %d %q", tt.name, r.status, r.errorType, r.requestID, r.body, tt.wantStatus, tt.wantType)
		}
		if tt.want == "" {
			continue
		}
		if got, want := normalize(t, r.body, from, to), mustJSON(t, tt.want); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: answer\n%s\nwant (timestamps as 0)\n%s", tt.name, r.body, tt.want)
		}
	}
	if n := s.ShadowRequests(); n != len(tests) {
		t.Errorf("ShadowRequests() = %d, want %d", n, len(tests))
	}
	if len(s.Messages()) != 0 {
		t.Errorf("shadow requests were taken as publishes: %+v", s.Messages())
	}
}

// TestShadowPaths checks the routes, the names and the front door on both
// listeners.
func TestShadowPaths(t *testing.T) {
	s := start(t, iotemu.Options{})
	alpn := rawClient(t, s.PKI().ClientTLSConfig(true))
	plain := rawClient(t, s.PKI().ClientTLSConfig(false))
	tests := []struct {
		name       string
		client     *http.Client
		addr       string
		path       string
		wantStatus int
		wantType   string
		wantMsg    string
	}{
		{"plain listener", plain, s.PlainAddr(), "/things/pi/shadow", 404, "ResourceNotFoundException:", "No shadow exists with name: 'pi'"},
		{"443 without ALPN", plain, s.ALPNAddr(), "/things/pi/shadow", 403, "ForbiddenException:", "Missing Authentication Token"},
		{"escaped thing", alpn, s.ALPNAddr(), "/things/pi%3A1/shadow", 404, "ResourceNotFoundException:", "No shadow exists with name: 'pi:1'"},
		{"thing with a dot", alpn, s.ALPNAddr(), "/things/pi.1/shadow", 400, "InvalidRequestException:", "Invalid thing name"},
		{"thing too long", alpn, s.ALPNAddr(), "/things/" + strings.Repeat("t", 129) + "/shadow", 400, "InvalidRequestException:", "Invalid thing name"},
		{"no thing", alpn, s.ALPNAddr(), "/things//shadow", 404, "ResourceNotFoundException:", "No route"},
		{"other route", alpn, s.ALPNAddr(), "/things/pi/jobs", 404, "ResourceNotFoundException:", "No route"},
		{"extra segment", alpn, s.ALPNAddr(), "/things/pi/x/shadow", 404, "ResourceNotFoundException:", "No route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := shadowDo(t, tt.client, tt.addr, "GET", tt.path, "", "")
			var body struct {
				Code    int
				Message string
			}
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatalf("body %s: %v", r.body, err)
			}
			if r.status != tt.wantStatus || r.errorType != tt.wantType || body.Code != tt.wantStatus || !strings.Contains(body.Message, tt.wantMsg) {
				t.Errorf("%d %q %s, want %d %q with %q", r.status, r.errorType, r.body, tt.wantStatus, tt.wantType, tt.wantMsg)
			}
		})
	}
}

// TestShadowTopicPublish checks that publishes to shadow topics are taken
// and applied, and that other reserved topics are still refused.
func TestShadowTopicPublish(t *testing.T) {
	s := start(t, iotemu.Options{})
	c := rawClient(t, s.PKI().ClientTLSConfig(true))
	tests := []struct {
		topic, body string
		want        int
		thing, name string // the shadow that must then exist ("" thing: none)
		version     int64
	}{
		{"$aws/things/pi/shadow/update", `{"state":{"reported":{"a":1}}}`, 200, "pi", "", 1},
		{"$aws/things/pi/shadow/name/sensor-agent/update", `{"state":{"reported":{"b":2}}}`, 200, "pi", "sensor-agent", 1},
		{"$aws/things/pi/shadow/update", `not json`, 200, "pi", "", 1}, // rejected on .../rejected, which HTTPS cannot see
		{"$aws/things/pi/shadow/get", ``, 200, "pi", "", 1},
		{"$aws/things/pi/shadow/update/accepted", `{}`, 400, "", "", 0},
		{"$aws/things/pi/jobs/get", `{}`, 400, "", "", 0},
		{"$aws/events/presence/connected/pi", `{}`, 400, "", "", 0},
	}
	for _, tt := range tests {
		r := shadowDo(t, c, s.ALPNAddr(), "POST", "/topics/"+publisher.EscapeTopic(tt.topic), "", tt.body)
		if r.status != tt.want {
			t.Errorf("publish to %s: %d %s, want %d", tt.topic, r.status, r.body, tt.want)
		}
		if tt.thing == "" {
			continue
		}
		doc, ok := s.Shadow(tt.thing, tt.name)
		var v struct{ Version int64 }
		if !ok || json.Unmarshal(doc, &v) != nil || v.Version != tt.version {
			t.Errorf("after %s: shadow %s/%s exists %v, %s; want version %d", tt.topic, tt.thing, tt.name, ok, doc, tt.version)
		}
	}
	r := shadowDo(t, c, s.ALPNAddr(), "POST", "/topics/"+publisher.EscapeTopic("$aws/things/pi/shadow/delete"), "", "")
	if _, ok := s.Shadow("pi", ""); r.status != 200 || ok {
		t.Errorf("publish to delete: %d %s, shadow exists %v", r.status, r.body, ok)
	}
}

// TestShadowWaitAndUpdate checks the helpers tests use to act as an
// operator and to wait for a device's report.
func TestShadowWaitAndUpdate(t *testing.T) {
	s := start(t, iotemu.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan []byte, 1)
	go func() {
		doc, err := s.WaitShadow(ctx, "pi", "sensor-agent", 2)
		if err != nil {
			t.Error(err)
		}
		done <- doc
	}()
	for i, doc := range []string{`{"state":{"desired":{"interval":"5s"}}}`, `{"state":{"reported":{"interval":"5s"}}}`} {
		if _, err := s.UpdateShadow("pi", "sensor-agent", []byte(doc)); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	var got struct {
		State   map[string]any
		Version int64
	}
	if err := json.Unmarshal(<-done, &got); err != nil || got.Version != 2 || got.State["delta"] != nil {
		t.Errorf("WaitShadow: %+v, %v; want version 2 without delta", got, err)
	}
	_, err := s.UpdateShadow("pi", "sensor-agent", []byte(`{"state":{},"version":1}`))
	if want := "409 Version conflict"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("UpdateShadow with a stale version: %v, want %q", err, want)
	}
	short, cancelShort := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancelShort()
	if _, err := s.WaitShadow(short, "pi", "other", 1); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("shadow %s", "pi~other")) {
		t.Errorf("WaitShadow on a missing shadow: %v", err)
	}
}
