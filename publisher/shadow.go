package publisher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// The Device Shadow REST API (GET, POST and DELETE
// /things/<thing>/shadow[?name=<shadow>]) on the publishing connection:
// same host, ports, ALPN, proxy, fallback and kept-alive connections.

// Shadow name limits (AWS IoT's iot-data API model).
var (
	thingNameRE  = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,128}$`)
	shadowNameRE = regexp.MustCompile(`^[$a-zA-Z0-9:_-]{1,64}$`)
)

// ValidThingName says whether name is a thing name AWS IoT accepts: 1-128
// of [a-zA-Z0-9:_-].
func ValidThingName(name string) bool { return thingNameRE.MatchString(name) }

// ValidShadowName says whether name is a shadow name AWS IoT accepts: 1-64
// of [$a-zA-Z0-9:_-].
func ValidShadowName(name string) bool { return shadowNameRE.MatchString(name) }

// ShadowReply is AWS's 2xx answer to a shadow request.
type ShadowReply struct {
	Status int
	Body   []byte // the JSON document
}

// ShadowError is AWS IoT's refusal of a shadow request (x-amzn-ErrorType,
// or its {"code":N,"message":"..."} body): 404 ResourceNotFoundException
// when there is no such shadow, 409 ConflictException on a version
// conflict, 403 when the policy does not allow it, and so on.
type ShadowError struct {
	Status    int
	Type      string // x-amzn-ErrorType name, e.g. ResourceNotFoundException
	Message   string // AWS's message
	Method    string
	Thing     string
	Name      string // the shadow's name, "" for the classic shadow
	RequestID string // x-amzn-RequestId
	host      string // the endpoint's, for the ARN in the policy advice
}

func (e *ShadowError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d", shadowOp(e.Method, e.Thing, e.Name), e.Status)
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	switch {
	case e.Status == http.StatusForbidden && e.Message == "Missing Authentication Token":
		b.WriteString("; " + MissingTokenHint(nil))
	case e.Status == http.StatusForbidden:
		b.WriteString("; " + ShadowPolicyHint(e.host, e.Method, e.Thing, e.Name))
	case e.Status == http.StatusUnauthorized:
		b.WriteString("; " + InactiveCertHint(""))
	}
	return b.String()
}

// ShadowAction is the IoT policy action a shadow request of method needs.
func ShadowAction(method string) string {
	switch method {
	case http.MethodPost:
		return "iot:UpdateThingShadow"
	case http.MethodDelete:
		return "iot:DeleteThingShadow"
	}
	return "iot:GetThingShadow"
}

// ShadowPolicyHint says what the policy attached to the device
// certificate must allow for a shadow request: the action and the thing's
// (or the named shadow's) ARN. host is the endpoint, for the region.
func ShadowPolicyHint(host, method, thing, name string) string {
	partition, region := arnScope(host)
	resource := fmt.Sprintf("arn:%s:iot:%s:<account-id>:thing/%s", partition, region, thing)
	if name != "" {
		resource += "/" + name
	}
	return fmt.Sprintf("the policy attached to the certificate must allow %s on %s (the device's shadow commands use iot:GetThingShadow, iot:UpdateThingShadow and iot:DeleteThingShadow); or the certificate is not ACTIVE",
		ShadowAction(method), resource)
}

// shadowOp names a shadow request in errors: "shadow get pi-1/sensor-agent".
func shadowOp(method, thing, name string) string {
	verb := map[string]string{http.MethodGet: "get", http.MethodPost: "update", http.MethodDelete: "delete"}[method]
	if verb == "" {
		verb = strings.ToLower(method)
	}
	ref := thing
	if name != "" {
		ref += "/" + name
	}
	return "shadow " + verb + " " + ref
}

// Shadow makes a Device Shadow request: method GET, POST (body is the
// update document) or DELETE on thing's shadow name ("" for the classic
// shadow). The error is nil for a 2xx answer; a *ShadowError for AWS's
// refusal (use errors.As); otherwise an *Error, as for a publish: the
// endpoint not reached, TLS or proxy trouble, an answer that is not AWS's.
func (c *Client) Shadow(ctx context.Context, method, thing, name string, body []byte) (ShadowReply, error) {
	cl := &call{method: method, thing: thing, name: name, body: body, op: shadowOp(method, thing, name)}
	if err := checkShadowCall(cl); err != nil {
		return ShadowReply{}, err
	}
	x, err := c.send(ctx, cl)
	if err != nil {
		return ShadowReply{}, err
	}
	return shadowReply(x, cl, c.cfg.Host)
}

func checkShadowCall(cl *call) error {
	var msg string
	switch {
	case cl.method != http.MethodGet && cl.method != http.MethodPost && cl.method != http.MethodDelete:
		msg = "method " + cl.method + ": want GET, POST or DELETE"
	case !ValidThingName(cl.thing):
		msg = fmt.Sprintf("invalid thing name %q: want 1-128 characters of [a-zA-Z0-9:_-]", cl.thing)
	case cl.name != "" && !ValidShadowName(cl.name):
		msg = fmt.Sprintf("invalid shadow name %q: want 1-64 characters of [$a-zA-Z0-9:_-]", cl.name)
	case cl.method != http.MethodPost && len(cl.body) > 0:
		msg = cl.method + " takes no body"
	case len(cl.body) > MaxPayload:
		msg = fmt.Sprintf("document is %d bytes, limit is %d", len(cl.body), MaxPayload)
	default:
		return nil
	}
	return &Error{Kind: Permanent, op: cl.op, Message: msg}
}

// shadowReply judges a shadow request's answer.
func shadowReply(x sent, cl *call, host string) (ShadowReply, error) {
	status := x.resp.StatusCode
	var v struct {
		Code    *int    `json:"code"`
		Message *string `json:"message"`
	}
	isJSON := json.Unmarshal(x.body, &v) == nil // an object
	if status >= 200 && status <= 299 {
		if isJSON {
			return ShadowReply{Status: status, Body: x.body}, nil
		}
		return ShadowReply{}, &Error{Kind: Auth, op: cl.op, Status: status,
			RequestID: x.resp.Header.Get("x-amzn-RequestId"),
			Message:   describeBody(x.resp.Header, x.body),
			advice:    "AWS IoT answers a shadow request with the shadow's JSON: a proxy, captive portal or web server is answering, or endpoint.host is wrong (" + describeEndpoint + ")"}
	}
	errType := errorTypeName(x.resp.Header.Get("x-amzn-ErrorType"))
	if errType != "" || (isJSON && v.Code != nil && v.Message != nil) {
		e := &ShadowError{Status: status, Type: errType, Method: cl.method, Thing: cl.thing, Name: cl.name,
			RequestID: x.resp.Header.Get("x-amzn-RequestId"), host: host}
		if v.Message != nil {
			e.Message = *v.Message
		}
		return ShadowReply{}, e
	}
	// Not AWS's answer: judged as a publish's would be.
	_, err := replyResult(x.resp, x.body, "")
	if e, ok := err.(*Error); ok {
		e.op = cl.op
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			e.advice = "the endpoint has no AWS IoT Device Shadow API (/things/<thing>/shadow): endpoint.host is wrong (" + describeEndpoint + ") or a proxy or web server is answering"
		}
	}
	return ShadowReply{}, err
}
