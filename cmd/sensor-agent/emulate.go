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

// cmdEmulate runs the AWS IoT HTTPS endpoint emulator until ctx is
// cancelled, printing each accepted message on one line to stdout.
func cmdEmulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("emulate", stderr)
	alpnListen := fs.String("alpn-listen", "127.0.0.1:4443", `443-style listener: client certificate only with ALPN x-amzn-http-ca, else 403 ("off" to disable)`)
	plainListen := fs.String("plain-listen", "127.0.0.1:8443", `8443-style listener: client certificate, no ALPN needed ("off" to disable)`)
	dir := fs.String("dir", "emulator", "directory of the CA, server and device certificates; generated when empty")
	record := fs.String("record", "", "append accepted messages to this JSON Lines `file`")
	fail := fs.String("fail", "", "answer errors at random with these `rates`, status=probability,... (e.g. 429=0.1,500=0.05)")
	lose := fs.Float64("lose", 0, "probability of recording a message but dropping its reply (0-1)")
	delay := fs.Duration("delay", 0, "delay before every reply")
	seed := fs.Int64("seed", 1, "seed for request ids and random faults (same seed, same faults)")
	downAfter := fs.Duration("down-after", 0, "refuse connections after being up this long, again and again (with -down-for)")
	downFor := fs.Duration("down-for", 0, "length of each down period (with -down-after)")
	answer := fs.String("answer", "normal", "answer every request `mode`: normal (as AWS), redirect[=STATUS[,LOCATION]], html[=STATUS] (a proxy's or captive portal's page; 2xx swallows the message) or stall (never answer)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sensor-agent emulate: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	statuses, err := parseFailRates(*fail)
	if err != nil {
		return fmt.Errorf("-fail: %w", err)
	}
	mode, err := iotemu.ParseMode(*answer)
	if err != nil {
		return fmt.Errorf("-answer: %w", err)
	}
	if (*downAfter > 0) != (*downFor > 0) {
		return fmt.Errorf("-down-after and -down-for go together")
	}
	log := newLogger(stderr, *logLevel)

	pki, err := iotemu.NewPKI(*dir)
	if err != nil {
		return err
	}
	var rec *os.File
	if *record != "" {
		if rec, err = os.OpenFile(*record, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			return fmt.Errorf("open record file: %w", err)
		}
		defer rec.Close()
	}
	var outMu sync.Mutex // handlers print concurrently
	opts := iotemu.Options{
		ALPNAddr:  *alpnListen,
		PlainAddr: *plainListen,
		PKI:       pki,
		Logger:    log,
		Seed:      *seed,
		Rates:     iotemu.Rates{Status: statuses, Lose: *lose},
		Delay:     *delay,
		Mode:      mode,
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
	if a := srv.ALPNAddr(); a != "" {
		log.Info("listening, 443-style: point the agent here with alpn on", "addr", a)
	}
	if a := srv.PlainAddr(); a != "" {
		log.Info("listening, 8443-style: point the agent here with alpn off", "addr", a)
	}
	if *fail != "" || *lose > 0 || *delay > 0 || *downAfter > 0 {
		log.Info("faults", "fail", *fail, "lose", *lose, "delay", *delay, "down_after", *downAfter, "down_for", *downFor, "seed", *seed)
	}

	var wg sync.WaitGroup
	if *downAfter > 0 {
		wg.Go(func() { flap(ctx, srv, log, *downAfter, *downFor) })
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
