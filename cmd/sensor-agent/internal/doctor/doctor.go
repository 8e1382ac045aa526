// Package doctor walks the chain from the config file to AWS IoT one link
// at a time — config, certificate and key, clock, DNS, proxy, CONNECT
// tunnel, TCP, TLS, a test publish — and returns each link's outcome: its
// status, its time, what was found and, when it is not right, what to do
// or to ask IT for. It owns every word the doctor says; the command only
// prints the steps. The network steps run on the publisher's own code
// (publisher.Prober), so what the doctor finds is what the agent meets.
package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// Step statuses, as printed by -json.
const (
	StatusPass = "pass"
	StatusWarn = "warn"
	StatusFail = "fail"
	StatusSkip = "skip"
)

// Step names, in order.
const (
	StepConfig  = "config"
	StepCert    = "certificate"
	StepClock   = "clock"
	StepDNS     = "dns"
	StepProxy   = "proxy"
	StepTunnel  = "tunnel"
	StepTCP     = "tcp"
	StepTLS     = "tls"
	StepPublish = "publish"
)

// Steps are the step names in the order Run returns them.
var Steps = []string{StepConfig, StepCert, StepClock, StepDNS, StepProxy, StepTunnel, StepTCP, StepTLS, StepPublish}

// expirySoon is when the certificate step warns about the expiry.
const expirySoon = 30 * 24 * time.Hour

// Step is one step's outcome.
type Step struct {
	Step       string  `json:"step"`
	Status     string  `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	Detail     string  `json:"detail"`
	Hint       string  `json:"hint"`
}

// Options say what to check and where the doctor gets what it cannot
// decide itself.
type Options struct {
	ConfigPath string
	Topic      string // of the test publish; "" = sensor-agent/<device_id>/doctor
	Port       int    // the endpoint's port to check; 0 = endpoint.port
	// Now is the device's clock; nil means time.Now.
	Now func() time.Time
	// Clock says whether the clock is synchronised and how that is known;
	// nil means SystemClock.
	Clock func() (synced bool, how string)
	// Getenv is where HTTPS_PROXY and NO_PROXY are read; nil means
	// os.Getenv.
	Getenv func(string) string
	// Emit, when set, gets each step as soon as it is known.
	Emit func(Step)
	// Shadow adds StepShadow after the publish: a GET of the device's
	// shadow ShadowName ("" = DefaultShadowName) of thing device_id.
	Shadow     bool
	ShadowName string
}

// Run runs every step, in the order of Steps: a step that cannot run
// is skipped, with the reason.
func Run(ctx context.Context, opts Options) []Step {
	d := &doctor{opts: opts, now: opts.Now, clockState: opts.Clock}
	if d.now == nil {
		d.now = time.Now
	}
	if d.clockState == nil {
		d.clockState = SystemClock
	}
	d.run(ctx)
	d.skipShadow()
	return d.steps
}

// Failed reports whether a step failed.
func Failed(steps []Step) bool {
	for _, s := range steps {
		if s.Status == StatusFail {
			return true
		}
	}
	return false
}

// doctor holds what the steps found for the steps after them.
type doctor struct {
	opts       Options
	now        func() time.Time
	clockState func() (synced bool, how string)

	steps []Step

	cfg       *config.Config
	pc        publisher.Config
	leaf      *x509.Certificate // the device certificate, if it parses
	pair      *tls.Certificate  // the certificate and key, if usable
	certBad   string            // why the pair cannot be used for TLS ("" if it can)
	certValid bool              // now is inside the certificate's validity
	prober    *publisher.Prober
}

func (d *doctor) add(s Step) {
	d.steps = append(d.steps, s)
	if d.opts.Emit != nil {
		d.opts.Emit(s)
	}
}

func (d *doctor) result(name string, start time.Time, status, detail, hint string) {
	d.add(Step{Step: name, Status: status, DurationMS: ms(time.Since(start)), Detail: detail, Hint: hint})
}

func (d *doctor) skip(name, why string) {
	d.add(Step{Step: name, Status: StatusSkip, Detail: why})
}

// skipFrom marks name and every step after it skipped.
func (d *doctor) skipFrom(name, why string) {
	on := false
	for _, s := range Steps {
		if s == name {
			on = true
		}
		if on {
			d.skip(s, why)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (d *doctor) run(ctx context.Context) {
	if !d.config() {
		d.skipFrom(StepCert, "needs a valid config (see config)")
		return
	}
	asked := time.Now()
	synced, how := d.clockState()
	asking := time.Since(asked)
	d.certificate(synced)
	d.clock(synced, how, asking)

	p, err := publisher.NewProber(d.pc, d.opts.Port, nil)
	if err != nil {
		// The config is valid: what is left is the environment's proxy.
		start := time.Now()
		d.skip(StepDNS, "needs a usable proxy setting (see proxy)")
		d.result(StepProxy, start, StatusFail, err.Error(),
			"fix HTTPS_PROXY (http://[user:password@]host:port), or set endpoint.proxy, which takes precedence")
		d.skipFrom(StepTunnel, "needs a usable proxy setting (see proxy)")
		return
	}
	d.prober = p
	if !d.dns(ctx) {
		d.skipFrom(StepProxy, "cannot run: the name does not resolve (see dns)")
		return
	}
	var conn net.Conn
	if info, ok := p.Proxy(); ok {
		conn = d.proxyAndTunnel(ctx, info)
		broken := d.lastFailed()
		d.skip(StepTCP, "through the proxy: it opens the TCP connection to the endpoint (see tunnel)")
		if conn == nil {
			d.skipFrom(StepTLS, "needs the tunnel (see "+broken+")")
			return
		}
	} else {
		why := directReason(info, d.pc.Host)
		d.skip(StepProxy, why)
		d.skip(StepTunnel, "no proxy")
		if conn = d.tcp(ctx); conn == nil {
			d.skipFrom(StepTLS, "needs a TCP connection (see tcp)")
			return
		}
	}
	defer conn.Close()
	if d.certBad != "" {
		d.skipFrom(StepTLS, d.certBad)
		return
	}
	d.tlsAndPublish(ctx, conn)
}

// lastFailed names the last step that failed.
func (d *doctor) lastFailed() string {
	for i := len(d.steps) - 1; i >= 0; i-- {
		if d.steps[i].Status == StatusFail {
			return d.steps[i].Step
		}
	}
	return ""
}
