package main

// The live page in a real browser: Debian's chromium, headless, driven by
// chromedp against the real binary with simulated sensors. It waits for
// the charts to draw, sees their points grow, sees the failing sensor
// shown as failing, checks the page fits a phone, and saves a screenshot
// (the README's, with -update-screenshot).

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sensor-agent/sensor-agent/publisher/iotemu"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the live page's screenshot to "+readmeScreenshot)

// readmeScreenshot is the picture the README shows.
const readmeScreenshot = "testdata/live-page.png"

// needChromium finds Debian's chromium; CI installs it (.ci/run).
func needChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "chromium is not installed (Debian package chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: CI installs it (.ci/run)", why)
	}
	t.Skip(why)
	return ""
}

const pageSensors = `  - name: greenhouse
    driver: sim
    interval: 50ms
    values: [temperature_c, humidity_pct]
  - name: door
    driver: sim
    interval: 100ms
    waveform: square
    period: 16
    values: [level]
  - {name: broken, driver: sim, interval: 200ms, fail_open: 1000000}
`

// chartPoints is a JS expression: the points the greenhouse temperature
// chart holds once its canvas has drawn a line, else 0.
const chartPoints = `(() => {
  const c = document.querySelector('section[data-sensor="greenhouse"] .chart[data-key="temperature_c"]');
  if (!c) return 0;
  const cv = c.querySelector("canvas"), g = cv.getContext("2d");
  const px = g.getImageData(0, 0, cv.width, cv.height).data;
  let drawn = 0; // the line's blue, not the grey frame
  for (let i = 0; i < px.length; i += 4) if (px[i+2] > 150 && px[i] < 100 && px[i+3] > 0) drawn++;
  return drawn > 20 ? +c.dataset.points : 0;
})()`

func TestLivePageInBrowser(t *testing.T) {
	t.Parallel()
	chrome := needChromium(t)
	ctx := testContext(t)
	srv, pki := startEmulator(t, iotemu.Options{})
	cfg := agentConfig{device: "greenhouse-pi", addr: srv.ALPNAddr(), alpn: "on", pki: pki, format: "batch",
		maxReadings: 20, flushInterval: "500ms", sensors: pageSensors,
		extra: "http:\n  listen: \"127.0.0.1:0\"\n  history: 10m\n"}.write(t)
	p := startEnv(t, ctx, nil, []string{"RUNTIME_DIRECTORY="}, "run", "-config", cfg)
	base := "http://" + p.waitOutput(ctx, p.stderr, regexp.MustCompile(`msg="serving the live page, /metrics and /healthz" addr=(\S+)`))[1]

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1100, 1000),
		chromedp.UserDataDir(t.TempDir()))...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	console := collectConsole(bctx)

	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("open %s: %v", base, err)
	}
	first := pollPage[int](t, bctx, p, "the temperature chart drawn", "("+chartPoints+") >= 5 && ("+chartPoints+")")
	later := pollPage[int](t, bctx, p, "more points plotted", "("+chartPoints+") > "+strconv.Itoa(first)+" && ("+chartPoints+")")
	if later <= first {
		t.Errorf("plotted points went from %d to %d, want growth", first, later)
	}
	broken := pollPage[map[string]string](t, bctx, p, "the broken sensor shown failing", `(() => {
	  const c = document.querySelector('section[data-sensor="broken"]');
	  return c && c.dataset.healthy === "false" ? {badge: c.querySelector(".badge").textContent,
	    err: c.querySelector(".err").textContent, health: document.getElementById("health").textContent,
	    border: getComputedStyle(c).borderColor} : null;
	})()`)
	if broken["badge"] != "failing" || !strings.Contains(broken["err"], "fail_open") {
		t.Errorf("broken sensor shown with badge %q, error %q; want failing and its open error", broken["badge"], broken["err"])
	}
	if broken["health"] != "degraded" {
		t.Errorf("page health %q with a failing sensor, want degraded", broken["health"])
	}
	checkOtherCharts(t, bctx, p)
	checkPhone(t, bctx)
	// A sine's whole period (60 readings) makes a picture worth showing.
	pollPage[int](t, bctx, p, "a screenshot's worth of points", "("+chartPoints+") >= 80 && ("+chartPoints+")")
	saveScreenshot(t, bctx)
	for _, m := range console() {
		if !strings.Contains(m, "willReadFrequently") { // the test's own getImageData
			t.Errorf("browser console: %s", m)
		}
	}
}

// pollPage waits until the JS expression is truthy and returns its value.
func pollPage[T any](t *testing.T, ctx context.Context, p *proc, what, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr, chromedp.WithPollingInterval(100*time.Millisecond),
		chromedp.WithPollingTimeout(0)))
	if err != nil {
		var html string
		html, _ = chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("waiting for %s: %v\npage text:\n%s\nagent's stderr:\n%s", what, err, html, p.stderr)
	}
	return v
}

// collectConsole gathers the page's console messages, script exceptions
// and browser log entries (a refused Content-Security-Policy lands
// there) from now on; the returned func lists them.
func collectConsole(ctx context.Context) func() []string {
	var mu sync.Mutex
	var got []string
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, m.String())
			mu.Unlock()
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// checkOtherCharts: every value of the healthy sensors has a chart with
// points; the broken sensor has none.
func checkOtherCharts(t *testing.T, ctx context.Context, p *proc) {
	t.Helper()
	charts := pollPage[map[string]int](t, ctx, p, "a chart per value", `(() => {
	  const out = {};
	  for (const c of document.querySelectorAll(".chart")) out[c.closest("section").dataset.sensor + "/" + c.dataset.key] = +c.dataset.points;
	  return Object.keys(out).length >= 3 && Object.values(out).every((n) => n > 0) ? out : null;
	})()`)
	for _, want := range []string{"greenhouse/temperature_c", "greenhouse/humidity_pct", "door/level"} {
		if charts[want] == 0 {
			t.Errorf("chart %s: %d points (charts: %v)", want, charts[want], charts)
		}
	}
	for k := range charts {
		if strings.HasPrefix(k, "broken/") {
			t.Errorf("the broken sensor has a chart %s with points", k)
		}
	}
}

// checkPhone: at a phone's width nothing scrolls sideways.
func checkPhone(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile)); err != nil {
		t.Fatalf("phone viewport: %v", err)
	}
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`document.documentElement.scrollWidth <= window.innerWidth`,
		chromedp.WithPollingTimeout(5*time.Second)))
	if err != nil {
		w, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		t.Errorf("at 390 px wide the page is %d px wide (%v): a phone would scroll sideways", w, err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1100, 1000)); err != nil {
		t.Fatalf("desktop viewport: %v", err)
	}
}

func saveScreenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), "live-page.png")
	if *updateScreenshot {
		path = readmeScreenshot
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
