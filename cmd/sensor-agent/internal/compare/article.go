//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// articleClient is the article's approach, in Go: every reading of every
// sensor is its own POST over a fresh HTTPS connection, the certificate
// and key loaded again each time (as Python's requests does with cert=).
// It runs as its own process (compare re-executes itself) so that /proc
// measures it alone.
func articleClient(args []string) error {
	fs := flag.NewFlagSet("article-client", flag.ContinueOnError)
	url := fs.String("url", "", "https://host:port of the endpoint")
	ca := fs.String("ca", "", "CA file")
	cert := fs.String("cert", "", "device certificate")
	key := fs.String("key", "", "device key")
	interval := fs.Duration("interval", time.Second, "per sensor")
	n := fs.Int("sensors", 10, "sensors")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	for i := 1; i <= *n; i++ {
		name := fmt.Sprintf("s%02d", i)
		wg.Go(func() {
			t := time.NewTicker(*interval)
			defer t.Stop()
			for k := 0; ; k++ {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					if err := postOne(*url, *ca, *cert, *key, name, now, k); err != nil {
						fmt.Fprintln(os.Stderr, err)
					}
				}
			}
		})
	}
	wg.Wait()
	return nil
}

func postOne(url, caFile, certFile, keyFile, sensor string, now time.Time, k int) error {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}},
	}}
	x := 2 * math.Pi * float64(k%60) / 60
	body, _ := json.Marshal(map[string]any{
		"device": "article", "sensor": sensor, "time": now.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		"values": map[string]float64{"temperature_c": 20 + 5*math.Sin(x), "humidity_pct": 50 + 20*math.Sin(x)},
	})
	resp, err := client.Post(url+"/topics/sensors/article/"+sensor+"?qos=1", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", sensor, resp.Status)
	}
	return nil
}
