package publisher_test

import (
	"strings"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher"
)

func TestValidateTopic(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		wantErr string // substring; "" means valid
	}{
		{"simple", "sensors/pi/temp", ""},
		{"single level", "t", ""},
		{"seven slashes", "a/b/c/d/e/f/g/h", ""},
		{"eight slashes", "a/b/c/d/e/f/g/h/i", "8 slashes"},
		{"leading and doubled slashes are levels", "/a//b", ""},
		{"256 bytes", strings.Repeat("a", 256), ""},
		{"257 bytes", strings.Repeat("a", 257), "257 bytes"},
		{"multi-byte counts bytes", strings.Repeat("é", 129), "258 bytes"},
		{"utf-8", "capteurs/café/température", ""},
		{"invalid utf-8", "a/\xff", "UTF-8"},
		{"nul", "a\x00b", "NUL"},
		{"empty", "", "empty"},
		{"plus", "a/+/b", "wildcard"},
		{"hash", "a/#", "wildcard"},
		{"reserved $", "$SYS/x", "reserved"},
		{"reserved $aws", "$aws/things/pi/shadow/update", "reserved"},
		{"basic ingest", "$aws/rules/my_rule/sensors/pi", ""},
		{"basic ingest bare", "$aws/rules/my_rule", ""},
		{"basic ingest prefix not counted", "$aws/rules/r/a/b/c/d/e/f/g/h", ""},
		{"basic ingest eight slashes after prefix", "$aws/rules/r/a/b/c/d/e/f/g/h/i", "8 slashes"},
		{"basic ingest bad rule name", "$aws/rules/my-rule/x", "[a-zA-Z0-9_]+"},
		{"basic ingest empty rule name", "$aws/rules//x", "empty rule name"},
		{"basic ingest wildcard", "$aws/rules/r/#", "wildcard"},
		{"dollar inside is fine", "a/$b", ""},
		{"spaces and percent", "a b/100%", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := publisher.ValidateTopic(tt.topic)
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestEscapeTopic(t *testing.T) {
	tests := []struct{ topic, want string }{
		{"sensors/pi/temp", "sensors%2Fpi%2Ftemp"},
		{"/lead//double", "%2Flead%2F%2Fdouble"},
		{"$aws/rules/r/x", "$aws%2Frules%2Fr%2Fx"},
		{"a b?c", "a%20b%3Fc"},
		{"100%", "100%25"},
		{"café", "caf%C3%A9"},
		{"a;b,c", "a%3Bb%2Cc"},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			if got := publisher.EscapeTopic(tt.topic); got != tt.want {
				t.Errorf("EscapeTopic(%q) = %q, want %q", tt.topic, got, tt.want)
			}
		})
	}
}

func TestTopicTemplate(t *testing.T) {
	tests := []struct {
		name                   string
		template               string
		parseErr               string
		device, sensor, driver string
		want                   string
		renderErr              string
	}{
		{name: "all placeholders", template: "sensors/{device}/{driver}/{sensor}",
			device: "pi-1", sensor: "temp", driver: "bme280", want: "sensors/pi-1/bme280/temp"},
		{name: "repeated and adjacent", template: "{device}-{device}/{sensor}",
			device: "pi", sensor: "t", want: "pi-pi/t"},
		{name: "no placeholder", template: "fixed/topic", want: "fixed/topic"},
		{name: "basic ingest", template: "$aws/rules/ingest/{device}/{sensor}",
			device: "pi", sensor: "t", want: "$aws/rules/ingest/pi/t"},
		{name: "unknown placeholder", template: "s/{host}", parseErr: "unknown placeholder {host}"},
		{name: "empty placeholder", template: "s/{}", parseErr: "unknown placeholder {}"},
		{name: "unclosed", template: "s/{device", parseErr: "unbalanced '{' at offset 2"},
		{name: "nested", template: "s/{dev{ice}", parseErr: "unbalanced '{' at offset 2"},
		{name: "stray close", template: "s/device}", parseErr: "unbalanced '}' at offset 8"},
		{name: "empty template", template: "", parseErr: "empty"},
		{name: "wildcard in template", template: "s/#/{device}", parseErr: "wildcard"},
		{name: "reserved template", template: "$x/{device}", parseErr: "reserved"},
		{name: "too many levels", template: "a/b/c/d/e/f/g/h/{device}", parseErr: "8 slashes"},
		{name: "slash in value", template: "s/{device}", device: "a/b", renderErr: `{device} value "a/b" contains '/'`},
		{name: "plus in value", template: "s/{sensor}", sensor: "a+", renderErr: "contains '+'"},
		{name: "hash in value", template: "s/{driver}", driver: "#", renderErr: "contains '#'"},
		{name: "empty value", template: "s/{device}", renderErr: "{device} is empty"},
		{name: "unused values are not checked", template: "s/{device}", device: "pi", sensor: "a/b", want: "s/pi"},
		{name: "rendered too long", template: "s/{device}", device: strings.Repeat("x", 300), renderErr: "bytes"},
		{name: "bad rule name from value", template: "$aws/rules/{device}/x", device: "pi-1", renderErr: "rule name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := publisher.ParseTopicTemplate(tt.template)
			checkErr(t, err, tt.parseErr)
			if err != nil || tt.parseErr != "" {
				return
			}
			if tmpl.String() != tt.template {
				t.Errorf("String() = %q, want %q", tmpl.String(), tt.template)
			}
			got, err := tmpl.Render(tt.device, tt.sensor, tt.driver)
			checkErr(t, err, tt.renderErr)
			if got != tt.want {
				t.Errorf("Render = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestZeroTopicTemplate(t *testing.T) {
	var tmpl publisher.TopicTemplate
	if _, err := tmpl.Render("a", "b", "c"); err == nil {
		t.Fatal("zero TopicTemplate rendered without error")
	}
}

// checkErr fails unless err matches want: "" means no error, otherwise a
// substring of the message.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}
