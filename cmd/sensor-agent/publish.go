package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/publisher"
)

// cmdPublish publishes one message to one topic as a one-liner, the job of
// a hand-written publish script, with the agent's TLS, ALPN and error
// reporting.
func cmdPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("publish", stderr)
	cfgPath := fs.String("config", "", "config file to take the endpoint from (default "+config.DefaultPath+" unless -host is given)")
	topic := fs.String("topic", "", "topic to publish to (required)")
	qos := fs.Int("qos", -1, "0 or 1 (default: the config's publish.qos, else 1)")
	host := fs.String("host", "", "endpoint host, instead of a config file")
	port := fs.Int("port", 443, "endpoint port, with -host")
	alpn := fs.String("alpn", "auto", "auto, on or off, with -host")
	cert := fs.String("cert", "", "device certificate file, with -host")
	key := fs.String("key", "", "private key file, with -host")
	ca := fs.String("ca", "", "extra CA file, with -host")
	proxy := fs.String("proxy", "", "proxy URL, http://[user:password@]host:port or https://... (default: the config's endpoint.proxy, else HTTPS_PROXY)")
	retries := fs.Int("retries", 3, "attempts for retryable errors")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sensor-agent publish -topic TOPIC [-config FILE | -host H -cert C -key K] [-proxy URL] [MESSAGE | -]")
		fmt.Fprintln(stderr, "The message is the argument, or standard input when it is - or absent.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *topic == "" || fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	var pc publisher.Config
	if *host != "" {
		pc = publisher.Config{Host: *host, Port: *port, ALPN: *alpn, CertFile: *cert, KeyFile: *key, CAFile: *ca, Timeout: 10 * time.Second, QoS: 1}
	} else {
		path := *cfgPath
		if path == "" {
			path = config.DefaultPath
		}
		cfg, err := loadConfig(path)
		if err != nil {
			return err
		}
		pc = cfg.PublisherConfig()
	}
	if *proxy != "" {
		pc.Proxy = *proxy
	}
	if *qos >= 0 {
		pc.QoS = *qos
	}
	var msg []byte
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		msg = []byte(fs.Arg(0))
	} else {
		var err error
		if msg, err = io.ReadAll(io.LimitReader(os.Stdin, publisher.MaxPayload+1)); err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		if len(msg) > publisher.MaxPayload {
			// More may follow: count it, so that the error states the
			// real size. If only newlines follow, msg is all of it.
			size := &messageSize{}
			_, _ = size.Write(msg)
			_, _ = io.Copy(size, os.Stdin)
			if n := size.n - size.newlines; n > publisher.MaxPayload {
				return fmt.Errorf("message on stdin is %d bytes, limit is %d: split it", n, publisher.MaxPayload)
			}
		}
		msg = []byte(strings.TrimRight(string(msg), "\n"))
	}
	c, err := publisher.New(pc, newLogger(stderr, "warn"))
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.PublishRetry(ctx, *topic, msg, publisher.Backoff{Min: time.Second, Max: 10 * time.Second, Factor: 2, Jitter: 0.5}, *retries)
	if err != nil {
		var pe *publisher.Error
		if errors.As(err, &pe) {
			return fmt.Errorf("%w (%s)", err, pe.Kind)
		}
		return err
	}
	fmt.Fprintf(stdout, "published %d bytes to %s: %d OK traceId %s\n", len(msg), *topic, res.Status, res.TraceID)
	return nil
}

// messageSize counts what is written to it, and the newlines it ends
// with, which are not part of the message.
type messageSize struct{ n, newlines int64 }

func (m *messageSize) Write(p []byte) (int, error) {
	m.n += int64(len(p))
	trimmed := bytes.TrimRight(p, "\n")
	if len(trimmed) > 0 {
		m.newlines = 0
	}
	m.newlines += int64(len(p) - len(trimmed))
	return len(p), nil
}
