package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/clock"
	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// `sensor-agent doctor` walks the chain from the config file to AWS IoT one
// link at a time — config, certificate and key, clock, DNS, proxy, CONNECT
// tunnel, TCP, TLS, a test publish — and prints each with a mark and its
// time. A failing line says which link broke and what to do or to ask IT
// for. The network steps run on the publisher's own code (publisher.Prober),
// so what the doctor finds is what the agent meets.

// Step statuses, as printed by -json.
const (
	statusPass = "pass"
	statusWarn = "warn"
	statusFail = "fail"
	statusSkip = "skip"
)

var statusMarks = map[string]string{statusPass: "✓", statusWarn: "!", statusFail: "✗", statusSkip: "-"}

// Step names, in order.
const (
	stepConfig  = "config"
	stepCert    = "certificate"
	stepClock   = "clock"
	stepDNS     = "dns"
	stepProxy   = "proxy"
	stepTunnel  = "tunnel"
	stepTCP     = "tcp"
	stepTLS     = "tls"
	stepPublish = "publish"
)

var doctorSteps = []string{stepConfig, stepCert, stepClock, stepDNS, stepProxy, stepTunnel, stepTCP, stepTLS, stepPublish}

// doctorClockEnv, set to "synced" or "unsynced", replaces the system's
// answer to "is the clock synchronised?". It is a test hook: a test cannot
// set the machine's synchronisation state.
const doctorClockEnv = "SENSOR_AGENT_DOCTOR_CLOCK"

// expirySoon is when the certificate step warns about the expiry.
const expirySoon = 30 * 24 * time.Hour

// doctorStep is one step's outcome.
type doctorStep struct {
	Step       string  `json:"step"`
	Status     string  `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	Detail     string  `json:"detail"`
	Hint       string  `json:"hint"`
}

func cmdDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("doctor", stderr)
	cfgPath := fs.String("config", config.DefaultPath, "config file")
	topic := fs.String("topic", "", "topic of the test publish (default sensor-agent/<device_id>/doctor)")
	asJSON := fs.Bool("json", false, "print the steps as a JSON array of {step, status, duration_ms, detail, hint}")
	port := fs.Int("port", 0, "check this port of the endpoint instead of endpoint.port (e.g. endpoint.fallback_port)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sensor-agent doctor [-config FILE] [-topic T] [-port N] [-json]")
		fmt.Fprintln(stderr, "Checks each link from the config to AWS IoT (certificate, clock, DNS, proxy, TCP, TLS, a test publish);")
		fmt.Fprintln(stderr, "exit status 0 when all pass (warnings allowed), 1 on any failure.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *port < 0 || *port > 65535 {
		fs.Usage()
		return errUsage
	}
	d := &doctor{cfgPath: *cfgPath, topic: *topic, port: *port, now: time.Now, clockState: clockState}
	if !*asJSON {
		d.emit = func(s doctorStep) { printStep(stdout, s) }
	}
	d.run(ctx)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d.steps); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, d.summary())
	}
	if d.failed() {
		return exitError{1}
	}
	return nil
}

// doctor holds what the steps found for the steps after them.
type doctor struct {
	cfgPath, topic string
	port           int
	now            func() time.Time
	clockState     func() (synced bool, how string)
	emit           func(doctorStep) // prints a step as soon as it is known; nil for -json

	steps []doctorStep

	cfg       *config.Config
	pc        publisher.Config
	leaf      *x509.Certificate // the device certificate, if it parses
	pair      *tls.Certificate  // the certificate and key, if usable
	certBad   string            // why the pair cannot be used for TLS ("" if it can)
	certValid bool              // now is inside the certificate's validity
	prober    *publisher.Prober
}

func (d *doctor) add(s doctorStep) {
	d.steps = append(d.steps, s)
	if d.emit != nil {
		d.emit(s)
	}
}

func (d *doctor) result(name string, start time.Time, status, detail, hint string) {
	d.add(doctorStep{Step: name, Status: status, DurationMS: ms(time.Since(start)), Detail: detail, Hint: hint})
}

func (d *doctor) skip(name, why string) {
	d.add(doctorStep{Step: name, Status: statusSkip, Detail: why})
}

// skipFrom marks name and every step after it skipped.
func (d *doctor) skipFrom(name, why string) {
	on := false
	for _, s := range doctorSteps {
		if s == name {
			on = true
		}
		if on {
			d.skip(s, why)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (d *doctor) failed() bool {
	for _, s := range d.steps {
		if s.Status == statusFail {
			return true
		}
	}
	return false
}

func (d *doctor) run(ctx context.Context) {
	if !d.config() {
		d.skipFrom(stepCert, "needs a valid config (see config)")
		return
	}
	asked := time.Now()
	synced, how := d.clockState()
	asking := time.Since(asked)
	d.certificate(synced)
	d.clock(synced, how, asking)

	p, err := publisher.NewProber(d.pc, d.port, nil)
	if err != nil {
		// The config is valid: what is left is the environment's proxy.
		start := time.Now()
		d.skip(stepDNS, "needs a usable proxy setting (see proxy)")
		d.result(stepProxy, start, statusFail, err.Error(),
			"fix HTTPS_PROXY (http://[user:password@]host:port), or set endpoint.proxy, which takes precedence")
		d.skipFrom(stepTunnel, "needs a usable proxy setting (see proxy)")
		return
	}
	d.prober = p
	if !d.dns(ctx) {
		d.skipFrom(stepProxy, "cannot run: the name does not resolve (see dns)")
		return
	}
	var conn net.Conn
	if info, ok := p.Proxy(); ok {
		conn = d.proxyAndTunnel(ctx, info)
		broken := d.lastFailed()
		d.skip(stepTCP, "through the proxy: it opens the TCP connection to the endpoint (see tunnel)")
		if conn == nil {
			d.skipFrom(stepTLS, "needs the tunnel (see "+broken+")")
			return
		}
	} else {
		why := directReason(info, d.pc.Host)
		d.skip(stepProxy, why)
		d.skip(stepTunnel, "no proxy")
		if conn = d.tcp(ctx); conn == nil {
			d.skipFrom(stepTLS, "needs a TCP connection (see tcp)")
			return
		}
	}
	defer conn.Close()
	if d.certBad != "" {
		d.skipFrom(stepTLS, d.certBad)
		return
	}
	d.tlsAndPublish(ctx, conn)
}

// lastFailed names the last step that failed.
func (d *doctor) lastFailed() string {
	for i := len(d.steps) - 1; i >= 0; i-- {
		if d.steps[i].Status == statusFail {
			return d.steps[i].Step
		}
	}
	return ""
}

// ---- config ----

func (d *doctor) config() bool {
	start := time.Now()
	cfg, err := config.Load(d.cfgPath)
	if err != nil {
		hint := "fix the file: each line names the file, the line and the key"
		if errors.Is(err, fs.ErrNotExist) {
			hint = "give the config file with -config FILE"
		} else if errors.Is(err, fs.ErrPermission) {
			hint = "run doctor as the agent's user or as root"
		}
		detail := err.Error()
		// The message lists the first few; Total counts them all.
		if ce, ok := errors.AsType[*config.Errors](err); ok && ce.Total > 1 {
			detail = fmt.Sprintf("%d problems in %s:\n%s", ce.Total, d.cfgPath, detail)
		}
		d.result(stepConfig, start, statusFail, detail, hint)
		return false
	}
	d.cfg = cfg
	e := cfg.Endpoint
	d.pc = cfg.PublisherConfig()
	detail := fmt.Sprintf("%s: device %s, endpoint %s:%d (alpn %s)", cfg.File, cfg.DeviceID, e.Host, e.Port, e.ALPN)
	if e.FallbackPort != 0 {
		detail += fmt.Sprintf(", fallback port %d", e.FallbackPort)
	}
	if e.Proxy != "" {
		if u, err := publisher.ParseProxyURL(e.Proxy); err == nil && u != nil {
			detail += ", proxy " + u.Redacted()
		}
	}
	detail += ", " + plural(len(cfg.Sensors), "sensor")
	d.result(stepConfig, start, statusPass, detail, "")
	return true
}

// ---- certificate and key ----

func (d *doctor) certificate(synced bool) {
	start := time.Now()
	e := d.cfg.Endpoint
	status := statusPass
	var facts, hints []string
	worse := func(s string) {
		if s == statusFail || status == statusPass {
			status = s
		}
	}
	pair, err := publisher.LoadKeyPair(e.CertFile, e.KeyFile)
	if err != nil {
		worse(statusFail)
		facts = append(facts, err.Error())
		hints = append(hints, certFileHint(err))
		d.certBad = "needs a usable certificate and key (see certificate)"
		d.leaf = readLeaf(e.CertFile) // for the clock step, when only the key is wrong
	} else {
		d.pair, d.leaf = &pair, pair.Leaf
	}
	now := d.now()
	if leaf := d.leaf; leaf != nil {
		facts = append(facts, fmt.Sprintf("%s: %q issued by %q, valid %s to %s", filepath.Base(e.CertFile),
			leaf.Subject.CommonName, leaf.Issuer.CommonName, day(leaf.NotBefore), day(leaf.NotAfter)))
		outside, what := certOutsideValidity(leaf, now)
		d.certValid = outside == ""
		left := leaf.NotAfter.Sub(now)
		switch {
		case !d.certValid && synced:
			worse(statusFail)
			facts = append(facts, outside)
			hints = append(hints, what)
		case !d.certValid:
			worse(statusWarn)
			facts = append(facts, fmt.Sprintf("outside its validity by this device's clock (%s), which is not synchronised", now.UTC().Format(time.RFC3339)))
			hints = append(hints, "see clock")
		case left < expirySoon:
			worse(statusWarn)
			facts = append(facts, fmt.Sprintf("expires in %s", days(left)))
			hints = append(hints, "rotate it soon: create a new certificate, attach the policy and the thing, replace the files")
		default:
			facts = append(facts, days(left)+" left")
		}
	}
	if d.pair != nil {
		facts = append(facts, fmt.Sprintf("key %s matches", filepath.Base(e.KeyFile)))
	}
	if fi, err := os.Stat(e.KeyFile); err == nil {
		perm := fi.Mode().Perm()
		facts = append(facts, fmt.Sprintf("key mode %04o", perm))
		if perm&0o077 != 0 {
			worse(statusWarn)
			hints = append(hints, fmt.Sprintf("the private key is open to group/other: chmod 600 %s (owned by the agent's user)", e.KeyFile))
		}
	}
	if e.CAFile != "" {
		if err := checkCAFile(e.CAFile); err != nil {
			worse(statusFail)
			facts = append(facts, err.Error())
			hints = append(hints, "endpoint.ca_file must be a readable PEM bundle; leave it empty to trust only the system roots (which hold Amazon's)")
			if d.certBad == "" {
				d.certBad = "needs a usable ca_file (see certificate)"
			}
		} else {
			facts = append(facts, "ca_file "+filepath.Base(e.CAFile)+" ok")
		}
	}
	if d.leaf != nil {
		facts = append(facts, "AWS certificate id "+publisher.CertificateID(d.leaf))
	}
	d.result(stepCert, start, status, strings.Join(facts, "; "), strings.Join(hints, "; "))
}

// certOutsideValidity says how now lies outside the certificate's
// validity and what to do about the certificate; "" when inside. doctor
// and check judge it alike.
func certOutsideValidity(leaf *x509.Certificate, now time.Time) (outside, what string) {
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Sprintf("EXPIRED %s ago", days(now.Sub(leaf.NotAfter))),
			"create a new certificate for the thing (aws iot create-keys-and-certificate --set-as-active), attach the policy and the thing to it, and replace the two files: the agent picks them up without a restart"
	case now.Before(leaf.NotBefore):
		return fmt.Sprintf("NOT VALID YET (valid in %s)", days(leaf.NotBefore.Sub(now))),
			"the certificate starts in the future: issue one valid now"
	}
	return "", ""
}

// certValidityProblem is check's verdict on the device certificate's
// validity at now: "" inside it, else what is wrong, with the dates and
// the clock. Outside it, TLS fails either way (AWS refuses the
// certificate, or a wrong clock fails the server's), so check fails; but
// the clock may be what is wrong, and the message says so.
func certValidityProblem(file string, leaf *x509.Certificate, now time.Time, synced bool, how string) string {
	outside, what := certOutsideValidity(leaf, now)
	if outside == "" {
		return ""
	}
	msg := fmt.Sprintf("certificate %s (%q): %s by this device's clock, which says %s; the certificate is valid from %s to %s. TLS with AWS IoT fails until this is fixed. ",
		file, leaf.Subject.CommonName, outside, now.UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	if synced {
		return msg + "The clock is " + how + ", so the certificate is what is wrong: " + what
	}
	return msg + "The clock is " + how + ": a Raspberry Pi has no real-time clock and may boot with a wrong time, so the clock may be what is wrong; " +
		"let NTP set it (timedatectl timesync-status) or set it by hand (date -s), then check again. If the time is right: " + what
}

func certFileHint(err error) string {
	switch msg := err.Error(); {
	case errors.Is(err, fs.ErrNotExist):
		return "check endpoint.cert_file and endpoint.key_file: the files downloaded when the thing's certificate was created"
	case errors.Is(err, fs.ErrPermission):
		return "the agent's user must be able to read both files: run doctor as that user (or root) and check owner and mode"
	case strings.Contains(msg, "does not match"):
		return "use the private key downloaded together with this certificate (private.pem.key)"
	case strings.Contains(msg, "swapped"):
		return "swap endpoint.cert_file and endpoint.key_file"
	case strings.Contains(msg, "encrypted"):
		return "decrypt the key once: openssl pkey -in KEY -out KEY.plain, and keep it mode 0600"
	}
	return "both files must be PEM as AWS IoT issues them (device.pem.crt, private.pem.key)"
}

// readLeaf parses the first certificate in file, nil if it cannot.
func readLeaf(file string) *x509.Certificate {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil
			}
			return c
		}
	}
}

func checkCAFile(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("ca_file: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return fmt.Errorf("ca_file %s: no PEM certificates found", file)
	}
	return nil
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

func days(d time.Duration) string {
	n := int(d.Hours() / 24)
	if n == 1 {
		return "1 day"
	}
	if n == 0 && d > 0 {
		return "less than a day"
	}
	return fmt.Sprintf("%d days", n)
}

// ---- clock ----

// clockState asks the system (or the test hook) whether the clock is
// synchronised, and says how it knows.
func clockState() (bool, string) {
	switch v := os.Getenv(doctorClockEnv); v {
	case "synced":
		return true, "synchronised (" + doctorClockEnv + "=synced)"
	case "unsynced":
		return false, "NOT synchronised (" + doctorClockEnv + "=unsynced)"
	}
	synced := clock.New(clock.Options{}).Synced()
	_, fileErr := os.Stat(clock.TimesyncFile)
	switch {
	case synced && fileErr == nil:
		return true, "synchronised (systemd-timesyncd)"
	case synced:
		return true, "synchronised (the kernel's NTP state)"
	}
	return false, "NOT synchronised (no " + clock.TimesyncFile + ", and the kernel's NTP state says unsynchronised)"
}

// clock judges the clock; asking is how long asking whether it is
// synchronised took (before the certificate step, which needs the answer).
func (d *doctor) clock(synced bool, how string, asking time.Duration) {
	start := time.Now().Add(-asking)
	now := d.now()
	detail := fmt.Sprintf("%s; now %s", how, now.UTC().Format(time.RFC3339))
	const ntpHint = "check time synchronisation (timedatectl timesync-status): systemd-timesyncd needs UDP port 123 to an NTP server; if it is blocked, ask IT for an internal NTP server and set NTP= in /etc/systemd/timesyncd.conf"
	leaf := d.leaf
	switch {
	case leaf == nil && synced:
		d.result(stepClock, start, statusPass, detail, "")
	case leaf == nil:
		d.result(stepClock, start, statusWarn, detail, "readings carry clock_synced:false until it is; "+ntpHint)
	case synced && d.certValid:
		d.result(stepClock, start, statusPass, detail+", inside the certificate's validity", "")
	case synced:
		d.result(stepClock, start, statusPass, detail+", outside the certificate's validity (see certificate)", "")
	case d.certValid:
		d.result(stepClock, start, statusWarn, detail+", inside the certificate's validity, so TLS works",
			"readings carry clock_synced:false until it is; "+ntpHint)
	case now.Before(leaf.NotBefore):
		d.result(stepClock, start, statusFail,
			fmt.Sprintf("%s, BEFORE the certificate's validity (from %s): TLS fails until the clock is right (a Pi has no real-time clock and may boot in the past, even in 1970)",
				detail, leaf.NotBefore.UTC().Format(time.RFC3339)),
			"let NTP set the clock, or set it by hand (date -s); "+ntpHint)
	default:
		d.result(stepClock, start, statusFail,
			fmt.Sprintf("%s, AFTER the certificate's expiry (%s): TLS fails, either because the clock is wrong or because the certificate has expired",
				detail, leaf.NotAfter.UTC().Format(time.RFC3339)),
			"let NTP set the clock; if the time is right, rotate the certificate; "+ntpHint)
	}
}

// ---- DNS ----

func (d *doctor) dns(ctx context.Context) bool {
	start := time.Now()
	p := d.prober
	ctx, cancel := context.WithTimeout(ctx, p.Timeout())
	defer cancel()
	host := d.pc.Host
	info, viaProxy := p.Proxy()
	if !viaProxy {
		if net.ParseIP(host) != nil {
			d.result(stepDNS, start, statusPass, host+" is an address: nothing to resolve", "")
			return true
		}
		addrs, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			d.result(stepDNS, start, statusFail, fmt.Sprintf("cannot resolve the endpoint %s: %v", host, err),
				"check endpoint.host (aws iot describe-endpoint --endpoint-type iot:Data-ATS) and the DNS servers (/etc/resolv.conf); if only a proxy may resolve outside names here, set endpoint.proxy")
			return false
		}
		d.result(stepDNS, start, statusPass, fmt.Sprintf("%s → %s", host, strings.Join(addrs, ", ")), "")
		return true
	}
	var detail string
	if net.ParseIP(info.Host) != nil {
		detail = "proxy " + info.Host + " is an address"
	} else {
		addrs, err := net.DefaultResolver.LookupHost(ctx, info.Host)
		if err != nil {
			d.result(stepDNS, start, statusFail, fmt.Sprintf("cannot resolve the proxy %s: %v", info.Host, err),
				fmt.Sprintf("check the proxy's host in %s and the DNS servers (/etc/resolv.conf); ask IT for the proxy's name or address", info.Source))
			return false
		}
		detail = fmt.Sprintf("proxy %s → %s", info.Host, strings.Join(addrs, ", "))
	}
	// The endpoint, for information only: the proxy resolves it.
	ectx, ecancel := context.WithTimeout(ctx, min(p.Timeout(), 2*time.Second))
	defer ecancel()
	if addrs, err := net.DefaultResolver.LookupHost(ectx, host); err == nil {
		detail += fmt.Sprintf("; endpoint %s → %s (not needed: the proxy resolves it)", host, strings.Join(addrs, ", "))
	} else {
		detail += fmt.Sprintf("; endpoint %s does not resolve here, which is fine: the proxy resolves it", host)
	}
	d.result(stepDNS, start, statusPass, detail, "")
	return true
}

// ---- proxy and CONNECT tunnel ----

func directReason(info publisher.ProxyInfo, host string) string {
	switch info.Source {
	case "NO_PROXY", "no_proxy":
		return fmt.Sprintf("not used: %s matches %s (HTTPS_PROXY is set)", info.Source, host)
	case "loopback":
		return fmt.Sprintf("not used: %s is loopback, never proxied (HTTPS_PROXY is set)", host)
	}
	return "not used: endpoint.proxy is empty and HTTPS_PROXY is not set"
}

func (d *doctor) proxyAndTunnel(ctx context.Context, info publisher.ProxyInfo) net.Conn {
	p := d.prober
	name := fmt.Sprintf("proxy %s (from %s)", info.URL, info.Source)
	start := time.Now()
	conn, res, err := p.Tunnel(ctx)
	end := time.Now()
	var pe *publisher.ProxyError
	if err != nil && !errors.As(err, &pe) {
		pe = &publisher.ProxyError{Reason: publisher.ProxyUnreachable, Target: p.Endpoint(), Err: err}
	}
	if res.ProxyReached == 0 {
		detail, hint := proxyFailure(name, info, pe)
		d.add(doctorStep{Step: stepProxy, Status: statusFail, DurationMS: ms(end.Sub(start)), Detail: detail, Hint: hint})
		d.skip(stepTunnel, "needs the proxy (see proxy)")
		return nil
	}
	reached := fmt.Sprintf("%s: reachable at %s", name, net.JoinHostPort(info.Host, strconv.Itoa(info.Port)))
	if strings.HasPrefix(info.URL, "https://") {
		reached += ", TLS with the proxy ok"
	}
	d.add(doctorStep{Step: stepProxy, Status: statusPass, DurationMS: ms(res.ProxyReached), Detail: reached})
	tunnel := doctorStep{Step: stepTunnel, DurationMS: ms(end.Sub(start) - res.ProxyReached)}
	if err != nil {
		tunnel.Status = statusFail
		tunnel.Detail, tunnel.Hint = tunnelFailure(pe)
		if h := d.fallbackHint(); h != "" && (pe.Reason == publisher.ProxyForbidden || pe.Reason == publisher.ProxyUpstreamFailed) {
			tunnel.Hint += "; " + h
		}
		d.add(tunnel)
		return nil
	}
	tunnel.Status = statusPass
	tunnel.Detail = fmt.Sprintf("CONNECT %s allowed", p.Endpoint())
	if info.User != "" {
		tunnel.Detail += fmt.Sprintf("; credentials of user %q accepted", info.User)
	} else {
		tunnel.Detail += "; no authentication asked"
	}
	d.add(tunnel)
	return conn
}

func proxyFailure(name string, info publisher.ProxyInfo, pe *publisher.ProxyError) (detail, hint string) {
	where := net.JoinHostPort(info.Host, strconv.Itoa(info.Port))
	switch pe.Reason {
	case publisher.ProxyTLSFailed:
		detail = fmt.Sprintf("%s: TLS with the proxy failed: %v", name, pe.Err)
		var verr *tls.CertificateVerificationError
		if errors.As(pe.Err, &verr) {
			return detail, "the proxy's certificate is not trusted: add the proxy's CA to endpoint.ca_file, or use the proxy's http:// port"
		}
		return detail, "is it an http:// proxy? write http:// in the proxy URL"
	}
	detail = fmt.Sprintf("%s is unreachable at %s: %v", name, where, pe.Err)
	switch {
	case errors.Is(pe.Err, syscall.ECONNREFUSED):
		hint = "nothing listens there: check the proxy's address and port in " + info.Source + " and that the proxy runs (ask IT which proxy to use)"
	case publisher.IsTimeout(pe.Err):
		hint = "no answer: a firewall drops the connection, or the address is wrong: check it in " + info.Source + " (ask IT which proxy to use)"
	default:
		hint = "check the proxy's address and port in " + info.Source + " and the device's network (ask IT which proxy to use)"
	}
	return detail, hint
}

func tunnelFailure(pe *publisher.ProxyError) (detail, hint string) {
	answer := pe.Answer()
	switch pe.Reason {
	case publisher.ProxyAuthRequired:
		detail = fmt.Sprintf("the proxy requires authentication for CONNECT %s (%s) and no credentials were sent", pe.Target, answer)
		hint = "put the device's proxy account in endpoint.proxy: http://USER:PASSWORD@host:port (ask IT for one)"
	case publisher.ProxyAuthRejected:
		detail = fmt.Sprintf("the proxy rejected the credentials of user %q for CONNECT %s (%s)", pe.User, pe.Target, answer)
		hint = "check the user name and password in endpoint.proxy (percent-encode @ : / % in them, e.g. @ as %40); if they are right, ask IT whether the account may use the proxy"
	case publisher.ProxyForbidden:
		detail = fmt.Sprintf("the proxy forbids CONNECT to %s (%s)", pe.Target, answer)
		hint = fmt.Sprintf("ask IT to allow CONNECT to %s through the proxy for this device", pe.Target)
	case publisher.ProxyUpstreamFailed:
		detail = fmt.Sprintf("the proxy cannot reach %s (%s)", pe.Target, answer)
		hint = fmt.Sprintf("the endpoint is down, or the proxy's own network does not let it through: check endpoint.host, and ask IT to let the proxy reach %s", pe.Target)
	case publisher.ProxyRefused:
		detail = fmt.Sprintf("the proxy refused CONNECT to %s (%s)", pe.Target, answer)
		hint = fmt.Sprintf("ask IT to allow CONNECT to %s through the proxy", pe.Target)
	case publisher.ProxyProtocol:
		detail = fmt.Sprintf("the proxy did not answer CONNECT like an HTTP proxy: %v", pe.Err)
		hint = "check the proxy URL's scheme (http:// or https://) and port"
	default:
		detail = fmt.Sprintf("the proxy gave no answer to CONNECT %s: %v", pe.Target, pe.Err)
		hint = fmt.Sprintf("the proxy drops CONNECT to this port silently, or is overloaded: ask IT to allow CONNECT to %s", pe.Target)
	}
	if pe.UnsupportedAuth() != "" && (pe.Reason == publisher.ProxyAuthRequired || pe.Reason == publisher.ProxyAuthRejected) {
		hint = pe.NoBasicHint()
	}
	return detail, hint
}

func (d *doctor) fallbackHint() string {
	fb := d.pc.FallbackPort
	if fb == 0 || d.prober.Port() == fb {
		return ""
	}
	return fmt.Sprintf("endpoint.fallback_port %d is set: the agent will try it; check it with sensor-agent doctor -port %d", fb, fb)
}

// ---- TCP ----

func (d *doctor) tcp(ctx context.Context) net.Conn {
	start := time.Now()
	p := d.prober
	conn, err := p.Dial(ctx)
	if err == nil {
		d.result(stepTCP, start, statusPass, fmt.Sprintf("connected to %s (%s)", p.Endpoint(), conn.RemoteAddr()), "")
		return conn
	}
	port := strconv.Itoa(p.Port())
	allow := fmt.Sprintf("ask IT to allow outbound TCP port %s to %s, or for the proxy to use (endpoint.proxy)", port, d.pc.Host)
	var detail, hint string
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		detail = fmt.Sprintf("%s refused the connection: %v", p.Endpoint(), err)
		hint = "nothing listens there, or a firewall rejects it: check endpoint.host and endpoint.port; " + allow
	case publisher.IsTimeout(err):
		detail = fmt.Sprintf("no answer from %s within %s: %v", p.Endpoint(), p.Timeout(), err)
		hint = "a firewall drops outbound port " + port + ": " + allow
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		detail = fmt.Sprintf("no route to %s: %v", p.Endpoint(), err)
		hint = "check the device's network (default route, Wi-Fi, cable)"
	default:
		detail = fmt.Sprintf("cannot connect to %s: %v", p.Endpoint(), err)
		hint = allow
	}
	if h := d.fallbackHint(); h != "" {
		hint += "; " + h
	}
	d.result(stepTCP, start, statusFail, detail, hint)
	return nil
}

// ---- TLS and the test publish ----

// tlsAndPublish handshakes and publishes. The TLS line waits for the
// publish: with TLS 1.3 the server judges the client certificate after the
// client's handshake is done, so a refused certificate shows only when the
// reply is read, and it belongs on the TLS line.
func (d *doctor) tlsAndPublish(ctx context.Context, conn net.Conn) {
	p := d.prober
	start := time.Now()
	tc, info, err := p.Handshake(ctx, conn, d.pair)
	tlsDur := time.Since(start)
	if err != nil {
		detail, hint := d.tlsFailure(err, info, false)
		d.add(doctorStep{Step: stepTLS, Status: statusFail, DurationMS: ms(tlsDur), Detail: detail, Hint: hint})
		d.skip(stepPublish, "needs a TLS session (see tls)")
		return
	}
	defer tc.Close()
	tlsStep := doctorStep{Step: stepTLS, Status: statusPass, DurationMS: ms(tlsDur)}
	tlsStep.Detail, tlsStep.Hint, tlsStep.Status = d.tlsSuccess(info)

	topic := d.topic
	if topic == "" {
		topic = "sensor-agent/" + d.cfg.DeviceID + "/doctor"
	}
	payload, _ := json.Marshal(struct {
		Doctor bool   `json:"doctor"`
		Device string `json:"device"`
		Time   string `json:"time"`
	}{true, d.cfg.DeviceID, d.now().UTC().Format(time.RFC3339Nano)})
	start = time.Now()
	res, err := p.Publish(ctx, tc, topic, payload)
	pubDur := time.Since(start)
	var pe *publisher.Error
	if err != nil && errors.As(err, &pe) && pe.Status == 0 {
		if _, ok := publisher.ServerAlert(err); ok {
			tlsStep.Status = statusFail
			tlsStep.Detail, tlsStep.Hint = d.tlsFailure(err, info, true)
			d.add(tlsStep)
			d.skip(stepPublish, "needs a TLS session the server accepts (see tls)")
			return
		}
	}
	d.add(tlsStep)
	pub := doctorStep{Step: stepPublish, DurationMS: ms(pubDur)}
	if err == nil {
		pub.Status = statusPass
		pub.Detail = fmt.Sprintf("%d OK: %d bytes to %s, traceId %s", res.Status, len(payload), topic, res.TraceID)
		d.add(pub)
		return
	}
	pub.Status = statusFail
	pub.Detail, pub.Hint = d.publishFailure(err, info, topic)
	d.add(pub)
}

func (d *doctor) tlsSuccess(info publisher.TLSInfo) (detail, hint, status string) {
	status = statusPass
	var facts, hints []string
	facts = append(facts, info.Version)
	if info.ALPN != "" {
		facts = append(facts, "ALPN "+info.ALPN)
	} else if len(info.ALPNOffered) > 0 {
		facts = append(facts, fmt.Sprintf("ALPN %s offered, NONE negotiated", strings.Join(info.ALPNOffered, ",")))
	} else {
		facts = append(facts, "no ALPN offered")
	}
	if info.ServerName != "" {
		facts = append(facts, "SNI "+info.ServerName)
	} else {
		facts = append(facts, "no SNI (the host is an address)")
	}
	if info.ClientCertRequested {
		facts = append(facts, "client certificate sent")
	} else {
		facts = append(facts, "the server did NOT ask for the client certificate")
	}
	facts = append(facts, "chain "+chainString(info.Chain))
	switch {
	case info.AmazonRoot:
		facts = append(facts, fmt.Sprintf("issuer: Amazon (root %q)", info.Root))
	case info.AmazonHost:
		// Not reached: the handshake fails with an *InspectionError.
		facts = append(facts, fmt.Sprintf("issuer: NOT Amazon (root %q)", info.Root))
	default:
		facts = append(facts, fmt.Sprintf("root %q: not Amazon's, accepted because %s is not an AWS host", info.Root, d.pc.Host))
	}
	port := d.prober.Port()
	offered := len(info.ALPNOffered) > 0
	switch {
	case offered && info.ALPN != info.ALPNOffered[0]:
		status = statusWarn
		hints = append(hints, fmt.Sprintf("the server did not take the ALPN name %s: something in the way removed it (a TLS-inspecting proxy), or port %d is not AWS IoT's 443; AWS would then answer 403 Missing Authentication Token", publisher.ALPNProtocol, port))
	case !offered && port == 443:
		status = statusWarn
		hints = append(hints, "no ALPN on port 443 (endpoint.alpn: off): AWS uses the client certificate on 443 only with ALPN "+publisher.ALPNProtocol+": set endpoint.alpn: auto")
	}
	if !info.ClientCertRequested {
		status = statusWarn
		if offered {
			hints = append(hints, "a server that wants mutual TLS asks for the certificate: something in the way terminates TLS, or this is not AWS IoT")
		} else {
			hints = append(hints, "on port 443 AWS asks for the certificate only when ALPN "+publisher.ALPNProtocol+" is offered: set endpoint.alpn: auto or on (or use port 8443)")
		}
	}
	return strings.Join(facts, "; "), strings.Join(hints, "; "), status
}

// chainString shows a chain as "leaf ← intermediate ← root".
func chainString(chain []publisher.CertSummary) string {
	if len(chain) == 0 {
		return "(none)"
	}
	names := make([]string, 0, len(chain)+1)
	for _, c := range chain {
		names = append(names, strconv.Quote(c.Subject))
	}
	if last := chain[len(chain)-1]; last.Issuer != last.Subject {
		names = append(names, strconv.Quote(last.Issuer))
	}
	return strings.Join(names, " ← ")
}

// tlsFailure words a failed handshake; afterHandshake: the server's alert
// came after the client's handshake (TLS 1.3), with the first reply.
func (d *doctor) tlsFailure(err error, info publisher.TLSInfo, afterHandshake bool) (detail, hint string) {
	p := d.prober
	ep := p.Endpoint()
	via := ""
	if px, ok := p.Proxy(); ok {
		via = " through proxy " + px.URL
	}
	var (
		ie   *publisher.InspectionError
		hn   x509.HostnameError
		inv  x509.CertificateInvalidError
		rh   tls.RecordHeaderError
		verr *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &ie):
		if ie.Verified {
			detail = fmt.Sprintf("the server certificate of %s%s was issued by %s, NOT by Amazon: a TLS-inspecting proxy or firewall is in the way (its CA is in this device's trust store)", ep, via, ie.Issuer)
		} else {
			detail = fmt.Sprintf("the server certificate of %s%s is not trusted: issued by %s, a CA this device does not trust; unless that is the endpoint's own CA (then give it in endpoint.ca_file), a TLS-inspecting proxy or firewall is in the way", ep, via, ie.Issuer)
		}
		hint = "mutual TLS (the device certificate) cannot pass TLS inspection: ask IT for an inspection bypass (no TLS inspection) for " + d.pc.Host
	case errors.As(err, &hn):
		detail = fmt.Sprintf("the server certificate of %s%s does not match the host: %v", ep, via, hn)
		hint = "check endpoint.host: the account's iot:Data-ATS endpoint (aws iot describe-endpoint --endpoint-type iot:Data-ATS); or something in the way answers in its place"
	case errors.As(err, &inv):
		detail = fmt.Sprintf("the server certificate of %s is not valid at this device's time %s: %v", ep, d.now().UTC().Format(time.RFC3339), inv)
		hint = "the clock is probably wrong (see clock): let NTP set it"
	case errors.As(err, &verr):
		detail = fmt.Sprintf("the server certificate of %s%s is not trusted: %v", ep, via, verr)
		hint = "install the system's CA certificates (Debian: ca-certificates) or give the endpoint's CA in endpoint.ca_file"
	case errors.As(err, &rh):
		detail = fmt.Sprintf("%s%s does not speak TLS: %v", ep, via, err)
		hint = "check endpoint.port (443 or 8443); a captive portal or an HTTP-only filter may answer instead"
	default:
		if alert, ok := publisher.ServerAlert(err); ok {
			return d.alertFailure(alert, err, info, afterHandshake)
		}
		switch {
		case publisher.IsTimeout(err):
			detail = fmt.Sprintf("no TLS answer from %s%s within %s", ep, via, p.Timeout())
			hint = fmt.Sprintf("something in the way holds TLS to %s: ask IT to allow TLS to it", ep)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
			detail = fmt.Sprintf("the connection to %s%s was closed during the TLS handshake: %v", ep, via, err)
			hint = fmt.Sprintf("a firewall or proxy that filters TLS (by SNI or by port) is in the way: ask IT to allow TLS to %s", ep)
		default:
			detail = fmt.Sprintf("TLS with %s%s failed: %v", ep, via, err)
			hint = "see the message"
		}
	}
	return detail, hint
}

func (d *doctor) alertFailure(alert tls.AlertError, err error, info publisher.TLSInfo, afterHandshake bool) (detail, hint string) {
	ep := d.prober.Endpoint()
	when := "refused the TLS handshake"
	if afterHandshake {
		when = "refused the TLS session right after the handshake"
	}
	switch uint8(alert) {
	case 120: // no_application_protocol
		return fmt.Sprintf("%s %s: it does not accept the ALPN offer %s (alert %q)", ep, when, strings.Join(info.ALPNOffered, ","), alert.Error()),
			"on port 8443 set endpoint.alpn: off; on 443 the offer must be exactly " + publisher.ALPNProtocol
	case 70, 71: // protocol_version, insufficient_security
		return fmt.Sprintf("%s %s: TLS version or ciphers not accepted (alert %q)", ep, when, alert.Error()),
			"AWS IoT needs TLS 1.2 or 1.3: is this the AWS IoT endpoint?"
	case 40, 42, 43, 44, 45, 46, 48, 49, 116:
		id := ""
		if d.leaf != nil {
			id = publisher.CertificateID(d.leaf)
		}
		hint = fmt.Sprintf("the device certificate must be registered and ACTIVE in this account and region (aws iot describe-certificate --certificate-id %s), and cert_file/key_file must be the pair AWS issued", id)
		if d.leaf != nil && !d.certValid {
			hint = "the device certificate is outside its validity (see certificate and clock); " + hint
		}
		return fmt.Sprintf("%s %s: it does not accept the client certificate (alert %q)", ep, when, alert.Error()), hint
	}
	return fmt.Sprintf("%s %s: %v", ep, when, err), "see the message"
}

var regionRE = regexp.MustCompile(`\.iot\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(\.cn)?\.?$`)

// arnScope returns the ARN partition and region of an AWS IoT endpoint
// host (abc123-ats.iot.eu-west-1.amazonaws.com), "<region>" when it is
// not one.
func arnScope(host string) (partition, region string) {
	m := regionRE.FindStringSubmatch(strings.ToLower(host))
	if m == nil {
		return "aws", "<region>"
	}
	if m[2] != "" {
		return "aws-cn", m[1]
	}
	return "aws", m[1]
}

func (d *doctor) publishFailure(err error, info publisher.TLSInfo, topic string) (detail, hint string) {
	var pe *publisher.Error
	if !errors.As(err, &pe) {
		return err.Error(), "see the message"
	}
	id := ""
	if d.leaf != nil {
		id = publisher.CertificateID(d.leaf)
	}
	partition, region := arnScope(d.pc.Host)
	switch {
	case pe.Status == 403 && pe.Message == "Missing Authentication Token":
		detail = fmt.Sprintf("403 Missing Authentication Token for %s: AWS did not use the client certificate", topic)
		if len(info.ALPNOffered) == 0 {
			hint = "on port 443 AWS uses the client certificate only when ALPN " + publisher.ALPNProtocol + " is offered: set endpoint.alpn: auto (or on), or use port 8443"
		} else {
			hint = "ALPN " + publisher.ALPNProtocol + " was offered but did not reach AWS: something in the way removed it; ask IT for a bypass, or use port 8443 with endpoint.alpn: off"
		}
	case pe.Status == 403:
		detail = fmt.Sprintf("403 %s for %s: %s", nonEmpty(pe.ErrorType, "Forbidden"), topic, pe.Message)
		if pe.TraceID != "" {
			detail += " (traceId " + pe.TraceID + ")"
		}
		hint = fmt.Sprintf("the policy attached to the certificate must allow iot:Publish on arn:%s:iot:%s:<account-id>:topic/%s (see: aws iot list-attached-policies --target arn:%s:iot:%s:<account-id>:cert/%s); MQTT-only policy variables such as ${iot:Connection.Thing.ThingName} and ${iot:ClientId} never resolve over HTTPS: name the topics explicitly; or the certificate is not ACTIVE",
			partition, region, topic, partition, region, id)
	case pe.Status == 401:
		detail = fmt.Sprintf("401 %s for %s: %s", nonEmpty(pe.ErrorType, "Unauthorized"), topic, pe.Message)
		hint = fmt.Sprintf("the certificate must be registered and ACTIVE in this account and region: aws iot describe-certificate --certificate-id %s", id)
	case pe.Status != 0:
		detail = err.Error()
		switch pe.Kind {
		case publisher.Retry:
			hint = "a transient failure at AWS: the agent retries these by itself; run doctor again"
		case publisher.Permanent:
			hint = "AWS refuses this request for good: check the topic (-topic)"
		default:
			// A redirect, 404, an HTML page...: not AWS IoT's answer.
			hint = "the endpoint did not answer as AWS IoT does: fix what the message says, then run doctor again"
		}
	default:
		detail = err.Error()
		hint = "the connection failed during the publish: run doctor again"
	}
	return detail, hint
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ---- output ----

func printStep(w io.Writer, s doctorStep) {
	dur := ""
	if s.Status != statusSkip {
		dur = fmtMS(s.DurationMS)
	}
	first, rest, _ := strings.Cut(s.Detail, "\n")
	line := fmt.Sprintf("%s %-11s %7s  %s", statusMarks[s.Status], s.Step, dur, first)
	if s.Hint != "" {
		line += " → " + s.Hint
	}
	fmt.Fprintln(w, line)
	if rest != "" {
		for l := range strings.SplitSeq(rest, "\n") {
			fmt.Fprintf(w, "%23s%s\n", "", l)
		}
	}
}

func fmtMS(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.1fms", v)
	case v < 1000:
		return fmt.Sprintf("%.0fms", v)
	}
	return fmt.Sprintf("%.1fs", v/1000)
}

func (d *doctor) summary() string {
	var failed []string
	warned, skipped := 0, 0
	for _, s := range d.steps {
		switch s.Status {
		case statusFail:
			failed = append(failed, s.Step)
		case statusWarn:
			warned++
		case statusSkip:
			skipped++
		}
	}
	extra := plural(warned, "warning") + fmt.Sprintf(", %d skipped", skipped)
	if len(failed) > 0 {
		return fmt.Sprintf("doctor: FAILED at %s (%s)", strings.Join(failed, ", "), extra)
	}
	return "doctor: all checks passed (" + extra + ")"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
