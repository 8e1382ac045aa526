package publisher_test

import (
	"strings"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher"
)

func TestRedactProxyURL(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"no user info", "http://proxy.corp:3128", "http://proxy.corp:3128"},
		{"user only", "http://alice@proxy.corp:3128", "http://alice@proxy.corp:3128"},
		{"user and password", "http://alice:S3cret@proxy.corp:3128", "http://alice:xxxxx@proxy.corp:3128"},
		{"https", "https://alice:S3cret@proxy.corp:8443", "https://alice:xxxxx@proxy.corp:8443"},
		{"upper-case scheme", "HTTP://alice:S3cret@proxy.corp", "HTTP://alice:xxxxx@proxy.corp"},
		{"no scheme", "alice:S3cret@proxy.corp:3128", "alice:xxxxx@proxy.corp:3128"},
		{"slash in the password", "http://user:1234/S3cretPW@127.0.0.1:3128", "http://user:xxxxx@127.0.0.1:3128"},
		{"slash in the password, no scheme", "user:1234/S3cretPW@127.0.0.1:3128", "user:xxxxx@127.0.0.1:3128"},
		{"several @ in the password", "http://alice:S3@cr@et@proxy.corp:3128", "http://alice:xxxxx@proxy.corp:3128"},
		{"colons in the password", "http://alice:S3:cr:et@proxy.corp:3128", "http://alice:xxxxx@proxy.corp:3128"},
		{"slash, colon and @ in the password", "http://alice:a/S3:c@r/et@[::1]:3128", "http://alice:xxxxx@[::1]:3128"},
		{"? and # in the password", "http://alice:S3?cr#et@proxy.corp:3128", "http://alice:xxxxx@proxy.corp:3128"},
		{"percent-encoded", "http://al%40ice:S3cr%2Fet%40@proxy.corp:3128", "http://al%40ice:xxxxx@proxy.corp:3128"},
		{"bad percent-encoding", "http://alice:S3cret%zz@proxy.corp:3128", "http://alice:xxxxx@proxy.corp:3128"},
		{"user name with @ is ambiguous", "http://alice@corp:S3cret@proxy.corp", "http://xxxxx@proxy.corp"},
		{"user name with / is ambiguous", "http://ali/S3cret@proxy.corp", "http://xxxxx@proxy.corp"},
		{"empty user name", "http://:S3cret@proxy.corp", "http://xxxxx@proxy.corp"},
		{"password in the scheme's place", "S3@cret://alice@proxy.corp", "xxxxx@proxy.corp"},
		{"socks", "socks5://alice:S3cret@proxy.corp:1080", "socks5://alice:xxxxx@proxy.corp:1080"},
		{"garbage", "::::S3cret@@@", "xxxxx@"},
		{"garbage without @", "S3cret", "S3cret"}, // no user info: nothing is a password
		{"space and newline", "http://alice:S3 cr\net@pro xy:1", "http://alice:xxxxx@pro xy:1"},
		{"control characters in the host", "http://proxy\r\n.corp", "http://proxy??.corp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := publisher.RedactProxyURL(tt.in)
			if got != tt.want {
				t.Errorf("RedactProxyURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Contains(got, "S3") && tt.name != "garbage without @" {
				t.Errorf("RedactProxyURL(%q) = %q shows the secret", tt.in, got)
			}
		})
	}
}

// Whatever the value, an error from ParseProxyURL never shows the
// password: before, one with an unencoded '/' parsed as a host, a port and
// a path, and the error printed it whole.
func TestParseProxyURLNeverShowsThePassword(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{"http://user:1234/S3cretPW@127.0.0.1:3128", "proxy http://user:xxxxx@127.0.0.1:3128: the user name or password holds / ? or #"},
		{"user:1234/S3cretPW@127.0.0.1:3128", "proxy http://user:xxxxx@127.0.0.1:3128: the user name or password holds / ? or #"},
		{"http://user:12#S3cretPW@127.0.0.1:3128", "percent-encode them (/ as %2F, ? as %3F, # as %23"},
		{"http://user:12?S3cretPW@127.0.0.1:3128", "the user name or password holds / ? or #"},
		{"socks5://user:1234/S3cretPW@127.0.0.1:1080", "proxy socks5://user:xxxxx@127.0.0.1:1080"},
		{"ftp://user:S3cretPW@127.0.0.1:21", `proxy ftp://user:xxxxx@127.0.0.1:21: scheme "ftp" is not supported`},
		{"http://user:S3cretPW%zz@127.0.0.1:3128", "proxy URL is not valid (http://user:xxxxx@127.0.0.1:3128)"},
		{"http://user:S3cretPW@pro xy:3128", "proxy URL is not valid (http://user:xxxxx@pro xy:3128)"},
		{"http://user:S3cretPW@:3128", "proxy http://user:xxxxx@:3128: no host"},
		{"http://user:S3cretPW@proxy:99999", `proxy http://user:xxxxx@proxy:99999: port "99999" is not a port`},
		{"http://user:S3cretPW@proxy:3128/x", "proxy http://user:xxxxx@proxy:3128/x: a proxy URL has no path or query"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := publisher.ParseProxyURL(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "S3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}
