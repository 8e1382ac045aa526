package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// emulateArgs are emulate's flags, checked.
type emulateArgs struct {
	alpnListen, plainListen, dir, record, fail, answer, logLevel string
	lose                                                         float64
	delay, downAfter, downFor                                    time.Duration
	seed                                                         int64
	statuses                                                     map[int]float64
	mode                                                         iotemu.Mode
}

// parseEmulateArgs parses and checks emulate's command line.
func parseEmulateArgs(args []string, stderr io.Writer) (*emulateArgs, error) {
	a := &emulateArgs{}
	fs := newFlagSet("emulate", stderr)
	fs.StringVar(&a.alpnListen, "alpn-listen", "127.0.0.1:4443", `443-style listener: client certificate only with ALPN x-amzn-http-ca, else 403 ("off" to disable)`)
	fs.StringVar(&a.plainListen, "plain-listen", "127.0.0.1:8443", `8443-style listener: client certificate, no ALPN needed ("off" to disable)`)
	fs.StringVar(&a.dir, "dir", "emulator", "directory of the CA, server and device certificates; generated when empty")
	fs.StringVar(&a.record, "record", "", "append accepted messages to this JSON Lines `file`")
	fs.StringVar(&a.fail, "fail", "", "answer errors at random with these `rates`, status=probability,... (e.g. 429=0.1,500=0.05)")
	fs.Float64Var(&a.lose, "lose", 0, "probability of recording a message but dropping its reply (0-1)")
	fs.DurationVar(&a.delay, "delay", 0, "delay before every reply")
	fs.Int64Var(&a.seed, "seed", 1, "seed for request ids and random faults (same seed, same faults)")
	fs.DurationVar(&a.downAfter, "down-after", 0, "refuse connections after being up this long, again and again (with -down-for)")
	fs.DurationVar(&a.downFor, "down-for", 0, "length of each down period (with -down-after)")
	fs.StringVar(&a.answer, "answer", "normal", "answer every request `mode`: normal (as AWS), redirect[=STATUS[,LOCATION]], html[=STATUS] (a proxy's or captive portal's page; 2xx swallows the message) or stall (never answer)")
	fs.StringVar(&a.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sensor-agent emulate: unexpected arguments %q\n", fs.Args())
		return nil, errUsage
	}
	var err error
	if a.statuses, err = parseFailRates(a.fail); err != nil {
		return nil, fmt.Errorf("-fail: %w", err)
	}
	if a.mode, err = iotemu.ParseMode(a.answer); err != nil {
		return nil, fmt.Errorf("-answer: %w", err)
	}
	if (a.downAfter > 0) != (a.downFor > 0) {
		return nil, fmt.Errorf("-down-after and -down-for go together")
	}
	return a, nil
}

// cmdEmulate runs the AWS IoT HTTPS endpoint emulator until ctx is
// cancelled, printing each accepted message on one line to stdout.
func cmdEmulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a, err := parseEmulateArgs(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, a.logLevel)

	pki, err := iotemu.NewPKI(a.dir)
	if err != nil {
		return err
	}
	var rec *os.File
	if a.record != "" {
		if rec, err = os.OpenFile(a.record, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			return fmt.Errorf("open record file: %w", err)
		}
		defer rec.Close()
	}
	var outMu sync.Mutex // handlers print concurrently
	opts := iotemu.Options{
		ALPNAddr:  a.alpnListen,
		PlainAddr: a.plainListen,
		PKI:       pki,
		Logger:    log,
		Seed:      a.seed,
		Rates:     iotemu.Rates{Status: a.statuses, Lose: a.lose},
		Delay:     a.delay,
		Mode:      a.mode,
		OnMessage: func(m iotemu.Message) {
			outMu.Lock()
			defer outMu.Unlock()
			printEmulated(stdout, m)
		},
	}
	if rec != nil {
		opts.Record = rec // a nil *os.File must not become a non-nil io.Writer
	}
	srv, err := iotemu.Start(opts)
	if err != nil {
		return err
	}
	defer srv.Close()

	log.Info("device files", "cert", pki.Path(iotemu.DeviceCertFile), "key", pki.Path(iotemu.DeviceKeyFile), "ca", pki.Path(iotemu.CAFile))
	if addr := srv.ALPNAddr(); addr != "" {
		log.Info("listening, 443-style: point the agent here with alpn on", "addr", addr)
	}
	if addr := srv.PlainAddr(); addr != "" {
		log.Info("listening, 8443-style: point the agent here with alpn off", "addr", addr)
	}
	if a.fail != "" || a.lose > 0 || a.delay > 0 || a.downAfter > 0 {
		log.Info("faults", "fail", a.fail, "lose", a.lose, "delay", a.delay, "down_after", a.downAfter, "down_for", a.downFor, "seed", a.seed)
	}

	var wg sync.WaitGroup
	if a.downAfter > 0 {
		wg.Go(func() { flap(ctx, srv, log, a.downAfter, a.downFor) })
	}
	<-ctx.Done()
	wg.Wait()
	stopping := []any{"messages", len(srv.Messages()), "tls_handshakes", srv.Handshakes()}
	if n := len(srv.Swallowed()); n > 0 {
		stopping = append(stopping, "swallowed", n)
	}
	log.Info("stopping", stopping...)
	return nil
}

// flap takes the emulator down and up again until ctx ends.
func flap(ctx context.Context, srv *iotemu.Server, log *slog.Logger, up, down time.Duration) {
	for {
		if !sleepCtx(ctx, up) {
			return
		}
		if err := srv.SetDown(true); err != nil {
			log.Error("going down", "err", err)
			return
		}
		log.Warn("emulator down: refusing connections", "for", down)
		if !sleepCtx(ctx, down) {
			return
		}
		if err := srv.SetDown(false); err != nil {
			log.Error("coming back up", "err", err)
			return
		}
		log.Info("emulator up again")
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// parseFailRates parses "429=0.1,500=0.05".
func parseFailRates(s string) (map[int]float64, error) {
	if s == "" {
		return nil, nil
	}
	rates := make(map[int]float64)
	for _, item := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("%q: want status=probability", item)
		}
		status, err := strconv.Atoi(k)
		if err != nil || status < 400 || status > 599 {
			return nil, fmt.Errorf("%q: status must be 400-599", item)
		}
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || p < 0 || p > 1 {
			return nil, fmt.Errorf("%q: probability must be 0-1", item)
		}
		rates[status] = p
	}
	return rates, nil
}

// printEmulated prints one line per message: time, listener, qos, topic,
// size, and the payload as recorded (compact JSON or base64), shortened.
func printEmulated(w io.Writer, m iotemu.Message) {
	payload := string(iotemu.NewRecordLine(m).Payload)
	if len(payload) > 160 {
		payload = payload[:157] + "..."
	}
	fmt.Fprintf(w, "%s %-5s qos=%d %s %dB id=%s %s\n", m.Received.Format("15:04:05.000"), m.Listener, m.QoS, m.Topic, len(m.Payload), m.RequestID, payload)
}
