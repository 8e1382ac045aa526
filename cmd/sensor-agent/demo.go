package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/configs"
	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

// cmdDemo starts the AWS IoT emulator on loopback with throwaway
// certificates and runs the agent on the embedded configs/demo.yaml
// against it, printing each message as it arrives.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	duration := fs.Duration("duration", 0, "stop after this long (default: run until Ctrl-C)")
	dir := fs.String("dir", "", "directory for the throwaway certificates and state (default: a temporary one, removed at exit)")
	httpAddr := fs.String("http", "127.0.0.1:9102", "where the live page, /metrics and /healthz listen (\"\" = off)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "sensor-agent-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	pki, err := iotemu.NewPKI(*dir)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var received, readings int
	srv, err := iotemu.Start(iotemu.Options{
		PKI: pki, PlainAddr: "off",
		OnMessage: func(m iotemu.Message) {
			mu.Lock()
			defer mu.Unlock()
			received++
			readings += printMessage(stdout, m)
		},
	})
	if err != nil {
		return fmt.Errorf("start emulator: %w", err)
	}
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.ALPNAddr())
	vars := map[string]string{"SENSOR_AGENT_DEMO_PORT": port, "SENSOR_AGENT_DEMO_DIR": *dir, "SENSOR_AGENT_DEMO_HTTP": *httpAddr}
	cfg, err := config.Parse("configs/demo.yaml (embedded)", configs.Demo, func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	})
	if err != nil {
		return err
	}
	if *httpAddr == "" {
		cfg.HTTP.Listen = ""
	}
	fmt.Fprintf(stdout, "demo: AWS IoT emulator on https://%s (mutual TLS, ALPN x-amzn-http-ca); certificates in %s\n", srv.ALPNAddr(), *dir)
	fmt.Fprintf(stdout, "demo: agent %q with %d simulated sensors; Ctrl-C to stop\n", cfg.DeviceID, len(cfg.Sensors))
	log := newLogger(stderr, cfg.LogLevel)
	err = runAgent(ctx, cfg, agent.Options{Logger: log, StatusInterval: 10 * time.Second})
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(stdout, "demo: %d messages with %d readings arrived over %d TLS connection(s)\n", received, readings, srv.Handshakes())
	return err
}

// printMessage prints one line for a message and returns its reading count.
func printMessage(w io.Writer, m iotemu.Message) int {
	var p struct {
		Readings []struct {
			Seq    uint64             `json:"seq"`
			Sensor string             `json:"sensor"`
			Time   string             `json:"time"`
			Values map[string]float64 `json:"values"`
		} `json:"readings"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Readings) == 0 {
		fmt.Fprintf(w, "← %s %d bytes: %.80s\n", m.Topic, len(m.Payload), m.Payload)
		return 0
	}
	first, last := p.Readings[0], p.Readings[len(p.Readings)-1]
	fmt.Fprintf(w, "← %s  %3d readings  seq %d-%d  %d bytes  last %s %s\n", m.Topic, len(p.Readings),
		first.Seq, last.Seq, len(m.Payload), last.Time, formatValues(last.Values))
	return len(p.Readings)
}
