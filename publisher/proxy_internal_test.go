package publisher

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
)

func TestUseProxy(t *testing.T) {
	const aws = "abc123-ats.iot.us-west-2.amazonaws.com"
	tests := []struct {
		noProxy, host, port string
		want                bool // true: through the proxy
	}{
		{"", aws, "443", true},
		{"*", aws, "443", false},
		{" * ", aws, "443", false},
		{"amazonaws.com", aws, "443", false},
		{"AmazonAWS.com", aws, "443", false},
		{".amazonaws.com", aws, "443", false},
		{"*.amazonaws.com", aws, "443", false},
		{"amazonaws.com", "amazonaws.com", "443", false},
		{".amazonaws.com", "amazonaws.com", "443", true}, // a leading dot: subdomains only
		{"*.amazonaws.com", "amazonaws.com", "443", true},
		{"zonaws.com", aws, "443", true}, // a suffix is not a subdomain
		{"example.com, iot.us-west-2.amazonaws.com", aws, "443", false},
		{"example.com,,other.org", aws, "443", true},
		{"amazonaws.com:8443", aws, "443", true}, // port-specific entries
		{"amazonaws.com:8443", aws, "8443", false},
		{"amazonaws.com.", aws + ".", "443", false}, // trailing dots
		{"10.0.0.0/8", "10.1.2.3", "443", false},
		{"10.0.0.0/8", "11.1.2.3", "443", true},
		{"10.0.0.0/8", aws, "443", true}, // names are not resolved
		{"192.168.1.10", "192.168.1.10", "443", false},
		{"192.168.1.10:443", "192.168.1.10", "8443", true},
		{"[2001:db8::1]:443", "2001:db8::1", "443", false},
		{"2001:db8::/32", "2001:db8::7", "443", false},
		{"10.1.2.3", "host.10.1.2.3", "443", true},
		{":443", aws, "443", true}, // malformed: ignored
		{"", "localhost", "443", false},
		{"", "127.0.0.1", "443", false},
		{"", "::1", "443", false},
		{"", "[::1]", "443", false},
	}
	for _, tt := range tests {
		t.Run(tt.noProxy+"|"+tt.host+":"+tt.port, func(t *testing.T) {
			if got := useProxy(tt.noProxy, tt.host, tt.port); got != tt.want {
				t.Errorf("useProxy(%q, %q, %q) = %v, want %v", tt.noProxy, tt.host, tt.port, got, tt.want)
			}
		})
	}
}

func TestProxyFromEnvironment(t *testing.T) {
	const aws = "abc123-ats.iot.us-west-2.amazonaws.com"
	tests := []struct {
		name       string
		env        map[string]string
		host       string
		wantProxy  string // redacted; "" for direct
		wantSource string
		wantErr    string
	}{
		{"nothing set", nil, aws, "", "", ""},
		{"HTTPS_PROXY", map[string]string{"HTTPS_PROXY": "http://proxy.corp:3128"}, aws, "http://proxy.corp:3128", "HTTPS_PROXY", ""},
		{"https_proxy", map[string]string{"https_proxy": "http://proxy.corp:3128"}, aws, "http://proxy.corp:3128", "https_proxy", ""},
		{"upper case wins", map[string]string{"HTTPS_PROXY": "http://a:1", "https_proxy": "http://b:2"}, aws, "http://a:1", "HTTPS_PROXY", ""},
		{"HTTP_PROXY is for http only", map[string]string{"HTTP_PROXY": "http://proxy.corp:3128"}, aws, "", "", ""},
		{"no scheme means http", map[string]string{"HTTPS_PROXY": "proxy.corp:3128"}, aws, "http://proxy.corp:3128", "HTTPS_PROXY", ""},
		{"default port", map[string]string{"HTTPS_PROXY": "https://proxy.corp"}, aws, "https://proxy.corp:443", "HTTPS_PROXY", ""},
		{"password redacted", map[string]string{"HTTPS_PROXY": "http://bob:hunter2@proxy.corp:3128"}, aws, "http://bob:xxxxx@proxy.corp:3128", "HTTPS_PROXY", ""},
		{"NO_PROXY", map[string]string{"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".amazonaws.com"}, aws, "", "NO_PROXY", ""},
		{"no_proxy", map[string]string{"HTTPS_PROXY": "http://p:1", "no_proxy": "amazonaws.com"}, aws, "", "no_proxy", ""},
		{"NO_PROXY elsewhere", map[string]string{"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"}, aws, "http://p:1", "HTTPS_PROXY", ""},
		{"loopback is direct", map[string]string{"HTTPS_PROXY": "http://p:1"}, "127.0.0.1", "", "loopback", ""},
		{"socks", map[string]string{"HTTPS_PROXY": "socks5://bob:hunter2@p:1080"}, aws, "", "", "HTTPS_PROXY: proxy socks5://bob:xxxxx@p:1080: socks5 proxies are not supported"},
		{"invalid, password hidden", map[string]string{"https_proxy": "http://bob:hunter2@pro xy:1"}, aws, "", "", "https_proxy: proxy URL is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			u, source, err := ProxyFromEnvironment(getenv, tt.host, 443)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if u != nil {
				got = u.Redacted()
			}
			if got != tt.wantProxy || source != tt.wantSource {
				t.Errorf("proxy %q from %q, want %q from %q", got, source, tt.wantProxy, tt.wantSource)
			}
		})
	}
}

func TestParseProxyURL(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"", "", ""},
		{"http://proxy:3128", "http://proxy:3128", ""},
		{"HTTP://Proxy:3128/", "http://Proxy:3128", ""},
		{"http://proxy", "http://proxy:80", ""},
		{"https://proxy", "https://proxy:443", ""},
		{"http://[::1]:3128", "http://[::1]:3128", ""},
		{"http://alice@proxy:3128", "http://alice@proxy:3128", ""},
		{"http://alice:p%40ss%3Aw0rd@proxy:3128", "http://alice:xxxxx@proxy:3128", ""},
		{"ftp://proxy:21", "", `scheme "ftp" is not supported`},
		{"http://:3128", "", "no host"},
		{"http://proxy:99999", "", `port "99999" is not a port`},
		{"http://alice:hunter2@proxy:3128/path", "", "no path or query"},
		{"http://alice:hunter2@proxy:3128?x=1", "", "no path or query"},
		{"http://alice:hunter2%zz@proxy:3128", "", "proxy URL is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := ParseProxyURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if u != nil {
				got = u.Redacted()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	u, _ := ParseProxyURL("http://alice:p%40ss%3Aw0rd@proxy:3128")
	if p, _ := u.User.Password(); p != "p@ss:w0rd" {
		t.Errorf("password %q, want it percent-decoded", p)
	}
}

func TestProxyErrorText(t *testing.T) {
	const px = "http://alice:xxxxx@proxy.corp:3128"
	const target = "abc-ats.iot.us-west-2.amazonaws.com:443"
	refused := &opErr{syscall.ECONNREFUSED}
	tests := []struct {
		name     string
		err      *ProxyError
		wantKind Kind
		want     []string
	}{
		{"unreachable", &ProxyError{Reason: ProxyUnreachable, Proxy: px, Source: "endpoint.proxy", Target: target, Err: refused},
			Retry, []string{"proxy " + px + " (from endpoint.proxy) is unreachable", "connection refused", "proxy is running"}},
		{"auth required", &ProxyError{Reason: ProxyAuthRequired, Proxy: "http://proxy.corp:3128", Target: target, Status: 407, StatusText: "Proxy Authentication Required", AuthSchemes: []string{"Basic"}},
			Auth, []string{"requires authentication (407 Proxy Authentication Required, offers Basic)", "no credentials were given", "http://USER:PASSWORD@host:port"}},
		{"auth required, NTLM only", &ProxyError{Reason: ProxyAuthRequired, Proxy: "http://proxy.corp:3128", Target: target, Status: 407, AuthSchemes: []string{"NTLM", "Negotiate"}},
			Auth, []string{"does not offer Basic", "exemption for " + target}},
		{"auth rejected", &ProxyError{Reason: ProxyAuthRejected, Proxy: px, User: "alice", Target: target, Status: 407, StatusText: "Proxy Authentication Required"},
			Auth, []string{`rejected the credentials of user "alice" (407 Proxy Authentication Required)`, "check the user name and password"}},
		{"forbidden", &ProxyError{Reason: ProxyForbidden, Proxy: px, Target: target, Status: 403, StatusText: "Forbidden", SquidError: "ERR_ACCESS_DENIED 0"},
			Auth, []string{"forbids CONNECT to " + target + " (403 Forbidden, ERR_ACCESS_DENIED 0)", "ask IT to allow CONNECT to " + target}},
		{"bad gateway", &ProxyError{Reason: ProxyUpstreamFailed, Proxy: px, Target: target, Status: 502, StatusText: "Bad Gateway"},
			Retry, []string{"cannot reach " + target + " (502 Bad Gateway)"}},
		{"gateway timeout", &ProxyError{Reason: ProxyUpstreamFailed, Proxy: px, Target: target, Status: 504, StatusText: "Gateway Timeout"},
			Retry, []string{"cannot reach " + target + " (504 Gateway Timeout)"}},
		{"other", &ProxyError{Reason: ProxyRefused, Proxy: px, Target: target, Status: 405, StatusText: "Method Not Allowed"},
			Auth, []string{"refused CONNECT to " + target + " (405 Method Not Allowed)"}},
		{"not a proxy", &ProxyError{Reason: ProxyProtocol, Proxy: px, Target: target, Err: errors.New(`malformed HTTP response "\x16\x03\x01"`)},
			Auth, []string{"did not answer CONNECT like an HTTP proxy", "scheme"}},
		{"proxy TLS untrusted", &ProxyError{Reason: ProxyTLSFailed, Proxy: "https://proxy.corp:443", Target: target, Err: x509.UnknownAuthorityError{}},
			Auth, []string{"TLS with the proxy failed", "ca_file"}},
		{"proxy TLS dropped", &ProxyError{Reason: ProxyTLSFailed, Proxy: "https://proxy.corp:443", Target: target, Err: io.EOF},
			Retry, []string{"TLS with the proxy failed", "EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k := tt.err.Kind(); k != tt.wantKind {
				t.Errorf("kind %v, want %v", k, tt.wantKind)
			}
			msg := tt.err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q\ndoes not contain %q", msg, w)
				}
			}
			// Through classifyNetError: same kind, same words.
			e := classifyNetError("t", target, 0, t.Context(), t.Context(), &dialError{stage: stageConnect, err: tt.err})
			if e.Kind != tt.wantKind || e.Error() != "publish t: "+msg {
				t.Errorf("classified as %v %q", e.Kind, e.Error())
			}
		})
	}
}

type opErr struct{ errno syscall.Errno }

func (e *opErr) Error() string { return "dial tcp 127.0.0.1:3128: connect: " + e.errno.Error() }
func (e *opErr) Unwrap() error { return e.errno }

func TestAmazonIssuer(t *testing.T) {
	ca := func(cn, org string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: []string{org}}}
	}
	leaf := &x509.Certificate{Issuer: pkix.Name{CommonName: "Corp Inspection CA", Organization: []string{"Example Corp"}}}
	tests := []struct {
		name   string
		chains [][]*x509.Certificate
		ok     bool
	}{
		{"Amazon Root CA 1", [][]*x509.Certificate{{leaf, ca("Amazon RSA 2048 M01", "Amazon"), ca("Amazon Root CA 1", "Amazon")}}, true},
		{"Starfield cross-sign", [][]*x509.Certificate{{leaf, ca("Starfield Services Root Certificate Authority - G2", "Starfield Technologies, Inc.")}}, true},
		{"legacy VeriSign", [][]*x509.Certificate{{leaf, ca("VeriSign Class 3 Public Primary Certification Authority - G5", "VeriSign, Inc.")}}, true},
		{"inspection CA", [][]*x509.Certificate{{leaf, ca("Corp Inspection CA", "Example Corp")}}, false},
		{"one good chain is enough", [][]*x509.Certificate{{leaf, ca("Corp Inspection CA", "Example Corp")}, {leaf, ca("Amazon Root CA 3", "Amazon")}}, true},
		{"not verified here", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAmazonIssuer("abc-ats.iot.us-west-2.amazonaws.com", tls.ConnectionState{
				VerifiedChains: tt.chains, PeerCertificates: []*x509.Certificate{leaf}})
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				for _, w := range []string{`"Corp Inspection CA" (Example Corp)`, "not by Amazon", "TLS-inspecting proxy or firewall",
					"cannot pass TLS inspection", "bypass (no TLS inspection) for abc-ats.iot.us-west-2.amazonaws.com"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%q\ndoes not contain %q", err, w)
					}
				}
			}
		})
	}
	for host, want := range map[string]bool{
		"abc-ats.iot.us-west-2.amazonaws.com":     true,
		"ABC-ats.iot.us-west-2.AmazonAWS.com.":    true,
		"abc.ats.iot.cn-north-1.amazonaws.com.cn": true,
		"amazonaws.com.evil.example":              false,
		"localhost":                               false,
		"127.0.0.1":                               false,
	} {
		if got := isAmazonHost(host); got != want {
			t.Errorf("isAmazonHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestIssuerName(t *testing.T) {
	cert := func(issuerCN string, org ...string) *x509.Certificate {
		return &x509.Certificate{Issuer: pkix.Name{CommonName: issuerCN, Organization: org}}
	}
	tests := []struct {
		name  string
		certs []*x509.Certificate
		want  string
	}{
		{"leaf only", []*x509.Certificate{cert("Corp Inspection CA", "Example Corp")}, `"Corp Inspection CA" (Example Corp)`},
		{"no organisation", []*x509.Certificate{cert("Corp Inspection CA")}, `"Corp Inspection CA"`},
		{"chain", []*x509.Certificate{cert("Zscaler Intermediate Root CA", "Zscaler Inc."), cert("Zscaler Root CA", "Zscaler Inc.")},
			`"Zscaler Intermediate Root CA" (Zscaler Inc.), chain up to "Zscaler Root CA" (Zscaler Inc.)`},
		{"no common name", []*x509.Certificate{cert("", "Example Corp")}, `"O=Example Corp"`},
		{"nothing", nil, "an unknown issuer (no certificate presented)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := issuerName(tt.certs); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
