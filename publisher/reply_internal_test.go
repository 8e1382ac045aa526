package publisher

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Bodies of the shapes an endpoint answers with.
const (
	awsOK      = `{"message":"OK","traceId":"t-1"}`
	portalPage = "<!DOCTYPE html>\n<html><head><TITLE>\n  Guest  Wi-Fi &amp; Login\n</TITLE></head><body><form>...</form></body></html>"
	plainPage  = "<html><body><h1>Not Found</h1></body></html>"
)

func awsBody(msg string) string { return fmt.Sprintf(`{"message":%q,"traceId":"t-1"}`, msg) }

// TestReplyTable is the whole status × body shape × header table: what
// the publisher makes of each answer (its Kind, or success) and what it
// says.
func TestReplyTable(t *testing.T) {
	html := map[string]string{"Content-Type": "text/html; charset=utf-8"}
	awsErr := func(name string) map[string]string {
		return map[string]string{"Content-Type": "application/json", "x-amzn-ErrorType": name + ":http://internal.amazon.com/coral/com.amazonaws.iot/"}
	}
	loc := func(l string) map[string]string { return map[string]string{"Location": l, "Content-Type": "text/html"} }
	const (
		redirect   = "the endpoint redirects, which AWS IoT never does"
		dataATS    = "iot:Data-ATS endpoint from aws iot describe-endpoint"
		notAWS     = "not an answer of AWS IoT"
		notFound   = "no AWS IoT publish path"
		portal     = `an HTML page (title "Guest Wi-Fi & Login") instead of AWS's JSON`
		notTaken   = "not taken as delivered"
		reportBug  = "bug in sensor-agent"
		notFollow  = "the redirect was not followed"
		splitHint  = "split the payload"
		noPostHint = "does not take POST"
	)
	tests := []struct {
		name    string
		status  int
		header  map[string]string
		body    string
		want    Kind // 0: success
		words   []string
		notWord []string
		retry   time.Duration
		loc     string
	}{
		// Success.
		{"200 AWS", 200, map[string]string{"Content-Type": "application/json"}, awsOK, 0, nil, nil, 0, ""},
		{"200 captive portal page: taken, with a warning", 200, html, portalPage, 0, []string{"200 OK with " + portal}, nil, 0, ""},
		{"200 empty", 200, nil, "", 0, []string{"200 OK with an empty body"}, nil, 0, ""},
		{"200 other JSON", 200, nil, `{"status":"ok"}`, 0, []string{`200 OK with "{\"status\":\"ok\"}" instead of AWS's JSON`}, nil, 0, ""},
		{"201 with AWS's JSON", 201, nil, awsOK, 0, []string{"201 Created instead of the documented 200 OK"}, nil, 0, ""},
		{"202 page", 202, html, portalPage, Auth, []string{"202 Accepted: " + portal, notTaken, dataATS}, nil, 0, ""},
		{"204 no body", 204, nil, "", Auth, []string{"204 No Content: an empty body", notTaken}, nil, 0, ""},
		{"206 other JSON", 206, nil, `{"ok":true}`, Auth, []string{notTaken}, nil, 0, ""},

		// 1xx and 3xx: never followed, never permanent.
		{"101", 101, nil, "", Auth, []string{"101 Switching Protocols", notAWS}, nil, 0, ""},
		{"300", 300, loc("https://a.example/"), plainPage, Auth, []string{"300 Multiple Choices to https://a.example/: " + redirect, dataATS, notFollow}, []string{"<html"}, 0, "https://a.example/"},
		{"301", 301, loc("https://portal.example/login?from=iot"), "<html><head><title>301 Moved Permanently</title></head></html>", Auth,
			[]string{"301 Moved Permanently to https://portal.example/login?from=iot: " + redirect + "; endpoint.host is wrong (use the " + dataATS + ") or a proxy or captive portal is answering; " + notFollow}, nil, 0, "https://portal.example/login?from=iot"},
		{"302", 302, loc("http://10.0.0.1/"), "", Auth, []string{"302 Found to http://10.0.0.1/", redirect}, nil, 0, "http://10.0.0.1/"},
		{"303", 303, loc("/elsewhere"), "", Auth, []string{"303 See Other to /elsewhere", redirect}, nil, 0, "/elsewhere"},
		{"304 without Location", 304, nil, "", Auth, []string{"304 Not Modified: " + redirect}, []string{" to "}, 0, ""},
		{"307", 307, loc("https://b.example/topics/x"), "", Auth, []string{"307 Temporary Redirect to https://b.example/topics/x", redirect}, nil, 0, "https://b.example/topics/x"},
		{"308", 308, loc("https://c.example/"), "", Auth, []string{"308 Permanent Redirect to https://c.example/", redirect}, nil, 0, "https://c.example/"},
		{"redirect with a password in Location", 302, loc("https://u:secret@d.example/"), "", Auth, []string{"to https://u:xxxxx@d.example/"}, []string{"secret"}, 0, "https://u:xxxxx@d.example/"},

		// 400: permanent only when AWS says it.
		{"400 AWS", 400, awsErr("InvalidRequestException"), awsBody("Topic name is invalid"), Permanent,
			[]string{"400 InvalidRequestException: Topic name is invalid (traceId t-1)"}, []string{dataATS}, 0, ""},
		{"400 AWS's JSON without the header", 400, nil, awsBody("bad"), Permanent, []string{"400 Bad Request: bad (traceId t-1)"}, nil, 0, ""},
		{"400 AWS's header without JSON", 400, awsErr("InvalidRequestException"), "", Permanent, []string{"400 InvalidRequestException: an empty body"}, nil, 0, ""},
		{"400 HTML page", 400, html, portalPage, Auth, []string{"400 Bad Request: " + portal, notAWS, dataATS}, nil, 0, ""},
		{"400 HTML without Content-Type", 400, nil, plainPage, Auth, []string{"an HTML page instead of AWS's JSON", notAWS}, nil, 0, ""},
		{"400 text", 400, map[string]string{"Content-Type": "text/plain"}, "Bad Request\n", Auth, []string{`400 Bad Request: "Bad Request" instead of AWS's JSON`, notAWS}, nil, 0, ""},
		{"400 other JSON", 400, nil, `{"error":"invalid"}`, Auth, []string{notAWS}, nil, 0, ""},
		{"400 empty", 400, nil, "", Auth, []string{"an empty body", notAWS}, nil, 0, ""},

		// 401, 403: AWS's hints, unless it is not AWS.
		{"401 AWS", 401, awsErr("UnauthorizedException"), awsBody("Unauthorized"), Auth, []string{"registered and ACTIVE"}, nil, 0, ""},
		{"403 AWS without ALPN", 403, awsErr("ForbiddenException"), awsBody("Missing Authentication Token"), Auth, []string{"Missing Authentication Token", "alpn on"}, nil, 0, ""},
		{"403 AWS policy", 403, awsErr("ForbiddenException"), awsBody("Forbidden"), Auth, []string{"iot:Publish"}, nil, 0, ""},
		{"403 firewall page", 403, html, "<html><title>Access denied</title></html>", Auth, []string{`403 Forbidden: an HTML page (title "Access denied")`, notAWS}, []string{"iot:Publish"}, 0, ""},

		// 404, 405: the endpoint is not AWS IoT's publish API.
		{"404 page", 404, html, "<html><head><title>404 Not Found</title></head><body><center>nginx</center></body></html>", Auth,
			[]string{`404 Not Found: an HTML page (title "404 Not Found") instead of AWS's JSON; the endpoint has no AWS IoT publish path (/topics/...): endpoint.host is wrong (use the ` + dataATS + ") or a proxy or web server is answering"}, nil, 0, ""},
		{"404 AWS-shaped", 404, awsErr("ResourceNotFoundException"), awsBody("No route"), Auth, []string{"404 ResourceNotFoundException: No route", notFound}, nil, 0, ""},
		{"404 empty", 404, nil, "", Auth, []string{notFound}, nil, 0, ""},
		{"405 page", 405, html, plainPage, Auth, []string{"405 Method Not Allowed: an HTML page", noPostHint, dataATS}, nil, 0, ""},
		{"405 AWS-shaped", 405, awsErr("MethodNotAllowedException"), awsBody("no"), Auth, []string{noPostHint}, nil, 0, ""},

		// Other 4xx: nothing about this message.
		{"406 AWS-shaped", 406, awsErr("NotAcceptableException"), awsBody("x"), Auth, []string{reportBug, dataATS}, nil, 0, ""},
		{"407 from a transparent proxy", 407, html, plainPage, Auth, []string{"407 Proxy Authentication Required", notAWS}, nil, 0, ""},
		{"409 AWS-shaped", 409, awsErr("ConflictException"), awsBody("x"), Auth, []string{reportBug}, nil, 0, ""},
		{"410 page", 410, html, plainPage, Auth, []string{notAWS}, nil, 0, ""},
		{"411 AWS-shaped", 411, awsErr("LengthRequiredException"), awsBody("Content-Length is required"), Auth, []string{reportBug}, nil, 0, ""},
		{"415 AWS-shaped", 415, awsErr("UnsupportedDocumentEncodingException"), awsBody("x"), Auth, []string{reportBug}, nil, 0, ""},
		{"421", 421, nil, "Misdirected Request", Auth, []string{notAWS}, nil, 0, ""},
		{"422 other JSON", 422, nil, `{"errors":["x"]}`, Auth, []string{notAWS}, nil, 0, ""},
		{"451", 451, html, portalPage, Auth, []string{portal}, nil, 0, ""},
		{"499 unknown", 499, nil, "", Auth, []string{"499: an empty body"}, nil, 0, ""},

		// 413: permanent for this payload, whoever says it (split).
		{"413 AWS-shaped", 413, awsErr("RequestEntityTooLargeException"), awsBody("too large"), Permanent, []string{splitHint}, nil, 0, ""},
		{"413 proxy page", 413, html, "<html><head><title>413 Request Entity Too Large</title></head></html>", Permanent,
			[]string{`an HTML page (title "413 Request Entity Too Large")`, splitHint}, nil, 0, ""},

		// Transient.
		{"408", 408, nil, "", Retry, []string{"408 Request Timeout"}, nil, 0, ""},
		{"429 AWS with Retry-After", 429, map[string]string{"x-amzn-ErrorType": "ThrottlingException:", "Retry-After": "7"}, awsBody("Rate exceeded"), Retry,
			[]string{"429 ThrottlingException: Rate exceeded"}, []string{notAWS}, 7 * time.Second, ""},
		{"429 page", 429, html, plainPage, Retry, []string{"429 Too Many Requests: an HTML page instead of AWS's JSON"}, []string{notAWS}, 0, ""},
		{"500 AWS", 500, awsErr("InternalFailureException"), awsBody("Internal failure"), Retry, []string{"500 InternalFailureException"}, nil, 0, ""},
		{"502 page", 502, html, "<html><title>502 Bad Gateway</title></html>", Retry, []string{`502 Bad Gateway: an HTML page (title "502 Bad Gateway")`}, nil, 0, ""},
		{"503 page with Retry-After", 503, map[string]string{"Content-Type": "text/html", "Retry-After": "120"}, portalPage, Retry,
			[]string{"503 Service Unavailable: " + portal}, nil, 2 * time.Minute, ""},
		{"504 empty", 504, nil, "", Retry, []string{"504 Gateway Timeout"}, nil, 0, ""},
		{"600 nonsense", 600, nil, "", Auth, []string{"600", notAWS}, nil, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
			for k, v := range tt.header {
				resp.Header.Set(k, v)
			}
			res, err := replyResult(resp, []byte(tt.body), "sensors/pi/x")
			text := res.Warning
			if tt.want == 0 {
				if err != nil {
					t.Fatalf("error %v, want success", err)
				}
				if len(tt.words) == 0 && res.Warning != "" {
					t.Errorf("warning %q for AWS's own answer", res.Warning)
				}
			} else {
				if err == nil {
					t.Fatalf("success %+v, want a %v error", res, tt.want)
				}
				if k := KindOf(err); k != tt.want {
					t.Errorf("kind %v, want %v: %v", k, tt.want, err)
				}
				e := err.(*Error)
				if e.Status != tt.status || e.RetryAfter != tt.retry || e.Location != tt.loc {
					t.Errorf("status %d, Retry-After %v, Location %q; want %d, %v, %q", e.Status, e.RetryAfter, e.Location, tt.status, tt.retry, tt.loc)
				}
				text = err.Error()
				if !strings.HasPrefix(text, "publish sensors/pi/x: ") {
					t.Errorf("%q does not name the topic first", text)
				}
			}
			for _, w := range tt.words {
				if !strings.Contains(text, w) {
					t.Errorf("%q\nlacks %q", text, w)
				}
			}
			for _, w := range tt.notWord {
				if strings.Contains(text, w) {
					t.Errorf("%q\nhas %q", text, w)
				}
			}
		})
	}
}

func TestDescribeBody(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name, ctype, body, want string
	}{
		{"title clipped", "text/html", "<title>" + strings.Repeat("ab ", 40) + "</title>", `an HTML page (title "` + strings.Repeat("ab ", 26) + "ab…" + `") instead of AWS's JSON`},
		{"title with attributes", "", `<html lang="de"><title id="t">Anmeldung – WLAN</title>`, `an HTML page (title "Anmeldung – WLAN") instead of AWS's JSON`},
		{"unclosed title", "text/html", "<title>never ends", "an HTML page instead of AWS's JSON"},
		{"empty title", "text/html", "<title>  </title>", "an HTML page instead of AWS's JSON"},
		{"xhtml", "application/xhtml+xml", "<?xml version='1.0'?><x/>", "an HTML page instead of AWS's JSON"},
		{"byte order mark and white space", "", "\uFEFF\n  <!doctype HTML><title>T</title>", `an HTML page (title "T") instead of AWS's JSON`},
		{"long text clipped", "text/plain", long, `"` + strings.Repeat("x", 120) + `…" instead of AWS's JSON`},
		{"control characters quoted", "", "a\x00b\x1b[31m", `"a\x00b\x1b[31m" instead of AWS's JSON`},
		{"not UTF-8", "", "caf\xe9", `"caf` + "\uFFFD" + `" instead of AWS's JSON`},
		{"white space only", "", " \n\t", "an empty body instead of AWS's JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.ctype != "" {
				h.Set("Content-Type", tt.ctype)
			}
			if got := describeBody(h, []byte(tt.body)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
