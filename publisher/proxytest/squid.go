package proxytest

import (
	"crypto/md5"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// SquidOptions configures StartSquid.
type SquidOptions struct {
	// Users turns on Basic authentication with these users and passwords.
	Users map[string]string
	// AllowPorts are the ports CONNECT is allowed to; CONNECT to any other
	// port is answered 403 (before authentication, as squid's default
	// configuration does).
	AllowPorts []int
	// TLSCert and TLSKey, PEM files, make squid also serve https_port.
	TLSCert, TLSKey string
}

// Squid is a running squid.
type Squid struct {
	Addr    string // http_port, 127.0.0.1:port
	TLSAddr string // https_port, "" unless SquidOptions.TLSCert was given
}

// URL returns http://Addr.
func (s *Squid) URL() string { return "http://" + s.Addr }

// StartSquid runs squid from a generated squid.conf: http_port (and
// https_port) on loopback, no cache, CONNECT only to AllowPorts, Basic
// authentication against an htpasswd file when Users are given.
func StartSquid(t testing.TB, o SquidOptions) *Squid {
	t.Helper()
	squid := NeedTool(t, "squid", "squid")
	helper := "/usr/lib/squid/basic_ncsa_auth"
	if o.Users != nil {
		if _, err := os.Stat(helper); err != nil {
			helper = NeedTool(t, "basic_ncsa_auth", "squid")
		}
	}
	// Run as root, squid drops to the user "proxy": its directory must be
	// reachable by that user, which t.TempDir's parent is not.
	dir, err := os.MkdirTemp("", "squid-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sp := &Squid{Addr: fmt.Sprintf("127.0.0.1:%d", FreePort(t))}
	var conf strings.Builder
	fmt.Fprintf(&conf, "visible_hostname squid-test\nhttp_port %s\n", sp.Addr)
	if o.TLSCert != "" {
		cert, err := os.ReadFile(o.TLSCert)
		if err != nil {
			t.Fatal(err)
		}
		key, err := os.ReadFile(o.TLSKey)
		if err != nil {
			t.Fatal(err)
		}
		sp.TLSAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		fmt.Fprintf(&conf, "https_port %s tls-cert=%s tls-key=%s\n", sp.TLSAddr, write("proxy.pem", cert), write("proxy.key", key))
	}
	ports := make([]string, len(o.AllowPorts))
	for i, p := range o.AllowPorts {
		ports[i] = strconv.Itoa(p)
	}
	fmt.Fprintf(&conf, `pid_filename %[1]s/squid.pid
cache_log %[1]s/cache.log
access_log stdio:%[1]s/access.log
coredump_dir %[1]s
cache deny all
cache_mem 8 MB
netdb_filename none
pinger_enable off
icp_port 0
htcp_port 0
shutdown_lifetime 0 seconds
acl SSL_ports port %[2]s
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
`, dir, strings.Join(ports, " "))
	if o.Users != nil {
		var htpasswd strings.Builder
		for user, pass := range o.Users {
			fmt.Fprintf(&htpasswd, "%s:%s\n", user, APR1(pass, "sEnS0r42"))
		}
		fmt.Fprintf(&conf, `auth_param basic program %s %s
auth_param basic children 2 startup=1 idle=1
auth_param basic realm sensor-agent test
acl authed proxy_auth REQUIRED
http_access deny !authed
`, helper, write("htpasswd", []byte(htpasswd.String())))
	}
	conf.WriteString("http_access allow localhost\nhttp_access deny all\n")
	confFile := write("squid.conf", []byte(conf.String()))
	runProxy(t, sp.Addr, squid, "-N", "-d", "1", "-f", confFile)
	if sp.TLSAddr != "" {
		waitListening(t, sp.TLSAddr, "squid", nil, func() string { return "" }, nil)
	}
	return sp
}

// APR1 is Apache's MD5-based password hash ("$apr1$"), which squid's
// basic_ncsa_auth accepts, so that no htpasswd program is needed.
func APR1(password, salt string) string {
	const magic = "$apr1$"
	pw := []byte(password)
	alt := md5.Sum(slices.Concat(pw, []byte(salt), pw))
	h := md5.New()
	h.Write(pw)
	h.Write([]byte(magic + salt))
	for i := len(pw); i > 0; i -= 16 {
		h.Write(alt[:min(16, i)])
	}
	for i := len(pw); i > 0; i >>= 1 {
		if i&1 != 0 {
			h.Write([]byte{0})
		} else {
			h.Write(pw[:1])
		}
	}
	final := h.Sum(nil)
	for i := range 1000 {
		r := md5.New()
		if i&1 != 0 {
			r.Write(pw)
		} else {
			r.Write(final)
		}
		if i%3 != 0 {
			r.Write([]byte(salt))
		}
		if i%7 != 0 {
			r.Write(pw)
		}
		if i&1 != 0 {
			r.Write(final)
		} else {
			r.Write(pw)
		}
		final = r.Sum(nil)
	}
	const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var out []byte
	enc := func(v uint32, n int) {
		for ; n > 0; n-- {
			out = append(out, itoa64[v&0x3f])
			v >>= 6
		}
	}
	f := func(i int) uint32 { return uint32(final[i]) }
	enc(f(0)<<16|f(6)<<8|f(12), 4)
	enc(f(1)<<16|f(7)<<8|f(13), 4)
	enc(f(2)<<16|f(8)<<8|f(14), 4)
	enc(f(3)<<16|f(9)<<8|f(15), 4)
	enc(f(4)<<16|f(10)<<8|f(5), 4)
	enc(f(11), 2)
	return magic + salt + "$" + string(out)
}

// Tinyproxy is a running tinyproxy.
type Tinyproxy struct {
	Addr string // 127.0.0.1:port
}

// URL returns http://Addr.
func (p *Tinyproxy) URL() string { return "http://" + p.Addr }

// StartTinyproxy runs tinyproxy in the foreground, allowing CONNECT to
// connectPorts only (403 "Access violation" for others).
func StartTinyproxy(t testing.TB, connectPorts ...int) *Tinyproxy {
	t.Helper()
	bin := NeedTool(t, "tinyproxy", "tinyproxy")
	port := FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var conf strings.Builder
	fmt.Fprintf(&conf, "Port %d\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nLogLevel Info\nAllow 127.0.0.1\n", port)
	for _, p := range connectPorts {
		fmt.Fprintf(&conf, "ConnectPort %d\n", p)
	}
	file := filepath.Join(t.TempDir(), "tinyproxy.conf")
	if err := os.WriteFile(file, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	runProxy(t, addr, bin, "-d", "-c", file)
	return &Tinyproxy{Addr: addr}
}
