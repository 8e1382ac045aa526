package publisher

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// The proxy setting: its URL and the environment's HTTPS_PROXY and
// NO_PROXY. The proxy URL's password is a secret: it is only ever shown through
// url.URL.Redacted, in errors as in logs.

// ParseProxyURL parses a proxy setting: http://[user:password@]host[:port]
// or https://..., as endpoint.proxy and HTTPS_PROXY take it. A value without
// a scheme is taken as http://, as net/http does for HTTPS_PROXY. The port
// defaults to 80 for http and 443 for https. "" gives nil, nil. Errors show
// the value only through RedactProxyURL: it may hold a password, and one
// that holds a '/' no longer parses as one.
func ParseProxyURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	const want = "want http://[user:password@]host:port or https://..."
	shown := RedactProxyURL(s)
	if userinfoNeedsEscaping(s) {
		// Else "http://u:1234/pw@host" parses as host "u", port 1234
		// and a path, and the error would be about the path.
		return nil, fmt.Errorf("proxy %s: the user name or password holds / ? or #, which end the user name and password in a URL: percent-encode them (/ as %%2F, ? as %%3F, # as %%23, @ as %%40, : as %%3A, %% as %%25)", shown)
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's error quotes the whole value, password included.
		return nil, fmt.Errorf("proxy URL is not valid (%s): %s; percent-encode @ : / %% in the user name and password", shown, want)
	}
	switch u.Scheme = strings.ToLower(u.Scheme); u.Scheme {
	case "http", "https":
	case "socks5", "socks5h", "socks4":
		return nil, fmt.Errorf("proxy %s: %s proxies are not supported: %s", shown, u.Scheme, want)
	default:
		return nil, fmt.Errorf("proxy %s: scheme %q is not supported: %s", shown, u.Scheme, want)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("proxy %s: no host: %s", shown, want)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("proxy %s: a proxy URL has no path or query: %s", shown, want)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("proxy %s: port %q is not a port", shown, p)
		}
	} else if u.Scheme == "https" {
		u.Host = net.JoinHostPort(u.Hostname(), "443")
	} else {
		u.Host = net.JoinHostPort(u.Hostname(), "80")
	}
	u.Path = ""
	return u, nil
}

// RedactProxyURL returns a proxy setting fit to print: everything between
// "://" (or the start, without a scheme) and the last '@' is replaced by
// "xxxxx", except a user name that is unambiguous (before the first ':' and
// of plain URL characters), which is kept as url.URL.Redacted keeps it.
// It relies on no parsing, because a password with an unencoded '/', '?'
// or '#' makes the value parse as a host and a path, with no user info to
// hide. Control characters are shown as '?'.
func RedactProxyURL(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	scheme, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 && proxySchemeRE.MatchString(s[:i]) {
		scheme, rest = s[:i+3], s[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s // no user info
	}
	userinfo, host := rest[:at], rest[at+1:]
	user, _, hasPass := strings.Cut(userinfo, ":")
	switch {
	case !plainUserRE.MatchString(user):
		return scheme + "xxxxx@" + host
	case hasPass:
		return scheme + user + ":xxxxx@" + host
	}
	return scheme + user + "@" + host
}

var (
	proxySchemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`)
	// plainUserRE is a user name as RFC 3986 allows it unencoded in user
	// info (without ':'), percent-escapes included.
	plainUserRE = regexp.MustCompile(`^[A-Za-z0-9._~!$&'()*+,;=%-]+$`)
)

// userinfoNeedsEscaping reports whether what stands before the last '@'
// after "://" holds a character that ends user info in a URL.
func userinfoNeedsEscaping(s string) bool {
	_, rest, _ := strings.Cut(s, "://")
	at := strings.LastIndex(rest, "@")
	return at >= 0 && strings.ContainsAny(rest[:at], "/?#")
}

// ProxyFromEnvironment returns the proxy that the environment prescribes for
// an HTTPS connection to host:port, with net/http's rules
// (golang.org/x/net/http/httpproxy): HTTPS_PROXY, else https_proxy; NO_PROXY,
// else no_proxy, lists exceptions; "localhost" and loopback addresses are
// never proxied. source names the variable that decided ("HTTPS_PROXY",
// "https_proxy", "NO_PROXY", "no_proxy"; "loopback" for a loopback host),
// "" when none is set. The proxy is nil when the connection is direct.
// getenv nil means os.Getenv.
func ProxyFromEnvironment(getenv func(string) string, host string, port int) (proxy *url.URL, source string, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	source, val := firstSet(getenv, "HTTPS_PROXY", "https_proxy")
	if val == "" {
		return nil, "", nil
	}
	if !useProxy("", host, strconv.Itoa(port)) {
		return nil, "loopback", nil
	}
	noName, noProxy := firstSet(getenv, "NO_PROXY", "no_proxy")
	if !useProxy(noProxy, host, strconv.Itoa(port)) {
		return nil, noName, nil
	}
	u, err := ParseProxyURL(val)
	if err != nil {
		return nil, source, fmt.Errorf("%s: %w", source, err)
	}
	return u, source, nil
}

// firstSet returns the first of names that getenv has a value for.
func firstSet(getenv func(string) string, names ...string) (name, val string) {
	for _, name = range names {
		if val = getenv(name); val != "" {
			return name, val
		}
	}
	return names[0], ""
}

// useProxy reports whether a connection to host:port goes through the
// proxy, given a NO_PROXY value, by httpproxy's rules (which net/http
// follows too). The proxy URL given to httpproxy only stands for "some
// proxy": the real one is parsed by ParseProxyURL, after NO_PROXY has
// decided, so that a NO_PROXY match needs no valid proxy URL.
func useProxy(noProxy, host, port string) bool {
	// httpproxy takes a URL's host: no brackets and, as DNS ignores it,
	// no trailing dot.
	host = strings.TrimSuffix(strings.TrimSpace(host), ".")
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return true
	}
	// A trailing dot in an entry is ignored too (httpproxy keeps it).
	entries := strings.Split(noProxy, ",")
	for i, e := range entries {
		entries[i] = strings.TrimSuffix(strings.TrimSpace(e), ".")
	}
	cfg := httpproxy.Config{HTTPSProxy: "http://proxy.invalid", NoProxy: strings.Join(entries, ",")}
	px, err := cfg.ProxyFunc()(&url.URL{Scheme: "https", Host: net.JoinHostPort(host, port)})
	return err == nil && px != nil
}
