package publisher

import (
	"encoding/json"
	"fmt"
	"html"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// What the publisher makes of an endpoint's answer.
//
// AWS IoT answers a publish 200 with {"message":"OK","traceId":"..."}, and an
// error with the same JSON plus an x-amzn-ErrorType header. A reply with
// neither comes from something else: a proxy, a captive portal, a web server
// at a wrong endpoint.host. Such a reply is reported by what it is (an HTML
// page and its title, a redirect and its target), and its status is judged
// by kindForStatus: only AWS can say that a message can never be accepted.
//
// Success: 200 is taken as delivered whatever its body says, since AWS may
// change the body and resending forever would lose data too (Result.Warning
// says what came back). Any other 2xx is taken as delivered only when its
// body is AWS's JSON: AWS documents 200, so a 201, 202 or 204 without it
// comes from something that is not AWS IoT, and taking it as delivered would
// drop the data silently. It is reported as Auth: the data is kept.

// reply is what a response says about itself.
type reply struct {
	errorType string // x-amzn-ErrorType name
	message   string // AWS's JSON "message", or what the body is
	traceID   string
	fromAWS   bool // x-amzn-ErrorType, or AWS's JSON body
}

func readReply(resp *http.Response, body []byte) reply {
	r := reply{errorType: errorTypeName(resp.Header.Get("x-amzn-ErrorType"))}
	var v struct {
		Message *string `json:"message"`
		TraceID string  `json:"traceId"`
	}
	isJSON := json.Unmarshal(body, &v) == nil
	r.traceID = v.TraceID
	if v.Message != nil {
		r.message = *v.Message
	}
	r.fromAWS = r.errorType != "" || (isJSON && v.Message != nil && v.TraceID != "")
	if !r.fromAWS || (r.message == "" && !isJSON) {
		r.message = describeBody(resp.Header, body)
	}
	return r
}

// describeBody says what a body that is not AWS's JSON is.
func describeBody(h http.Header, body []byte) string {
	text := strings.TrimSpace(strings.TrimPrefix(strings.ToValidUTF8(string(body), "\uFFFD"), "\uFEFF"))
	switch {
	case text == "":
		return "an empty body instead of AWS's JSON"
	case isHTML(h, text):
		if t := htmlTitle(text); t != "" {
			return fmt.Sprintf("an HTML page (title %q) instead of AWS's JSON", t)
		}
		return "an HTML page instead of AWS's JSON"
	}
	return fmt.Sprintf("%q instead of AWS's JSON", clip(text, 120))
}

func isHTML(h http.Header, text string) bool {
	if mt, _, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil && (mt == "text/html" || mt == "application/xhtml+xml") {
		return true
	}
	head := asciiLower(text[:min(len(text), 1024)])
	return strings.HasPrefix(head, "<!doctype html") || strings.Contains(head, "<html")
}

// htmlTitle returns the page's <title>, unescaped, its spaces collapsed and
// clipped; "" if there is none.
func htmlTitle(text string) string {
	lower := asciiLower(text) // same length as text, so indexes carry over
	i := strings.Index(lower, "<title")
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(lower[i:], '>')
	if j < 0 {
		return ""
	}
	start := i + j + 1
	end := strings.Index(lower[start:], "</title")
	if end < 0 {
		return ""
	}
	return clip(html.UnescapeString(text[start:start+end]), 80)
}

// asciiLower lowers ASCII letters only, keeping byte offsets.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// clip collapses runs of white space and cuts s to n runes.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// redactLocation returns a redirect's target fit for a log: password
// redacted, clipped.
func redactLocation(loc string) string {
	if u, err := url.Parse(loc); err == nil {
		loc = u.Redacted()
	}
	return clip(loc, 200)
}

const describeEndpoint = "use the iot:Data-ATS endpoint from aws iot describe-endpoint"

// advise says what is wrong and what to do about a reply of status with
// Kind kind, when that says more than hint does; "" otherwise. A transient
// failure gets none: AWS's own load balancers may answer 5xx without its
// JSON, and the message already says what the body is.
func advise(status int, kind Kind, fromAWS bool) string {
	switch {
	case status >= 300 && status <= 399:
		return "endpoint.host is wrong (" + describeEndpoint + ") or a proxy or captive portal is answering; the redirect was not followed"
	case status == http.StatusNotFound:
		return "the endpoint has no AWS IoT publish path (/topics/...): endpoint.host is wrong (" + describeEndpoint + ") or a proxy or web server is answering"
	case status == http.StatusMethodNotAllowed:
		return "the endpoint does not take POST /topics/..., which AWS IoT does: endpoint.host is wrong (" + describeEndpoint + ") or a proxy or web server is answering"
	case status >= 200 && status <= 299:
		return "AWS IoT answers a publish 200 with its JSON, so the message is not taken as delivered: a proxy, captive portal or web server is answering, or endpoint.host is wrong (" + describeEndpoint + ")"
	case !fromAWS && kind == Auth:
		return "not an answer of AWS IoT: a proxy, captive portal or firewall is answering, or endpoint.host is wrong (" + describeEndpoint + ")"
	case kind == Auth && status != http.StatusUnauthorized && status != http.StatusForbidden:
		return "AWS IoT does not answer a publish this way: endpoint.host may be another service's (" + describeEndpoint + "), or this is a bug in sensor-agent: please report it"
	}
	return ""
}

// replyResult turns the endpoint's reply (its body read) into a Result, or
// an *Error for a reply that is not a success.
func replyResult(resp *http.Response, body []byte, topic string) (Result, error) {
	r := readReply(resp, body)
	status := resp.StatusCode
	res := Result{Status: status, TraceID: r.traceID, RequestID: resp.Header.Get("x-amzn-RequestId")}
	if status == http.StatusOK || (status >= 200 && status <= 299 && r.fromAWS) {
		switch {
		case !r.fromAWS:
			res.Warning = fmt.Sprintf("%d %s with %s", status, http.StatusText(status), r.message)
		case status != http.StatusOK:
			res.Warning = fmt.Sprintf("%d %s instead of the documented 200 OK", status, http.StatusText(status))
		}
		return res, nil
	}
	kind := kindForStatus(status, r.fromAWS)
	e := &Error{
		Kind:       kind,
		Topic:      topic,
		Status:     status,
		ErrorType:  r.errorType,
		TraceID:    r.traceID,
		RequestID:  res.RequestID,
		Message:    r.message,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After")),
		advice:     advise(status, kind, r.fromAWS),
	}
	if status >= 300 && status <= 399 {
		// A redirect's page says nothing the status does not.
		e.Location = redactLocation(resp.Header.Get("Location"))
		e.Message = "the endpoint redirects, which AWS IoT never does"
	}
	return res, e
}
