package main

// The service's side of the Device Shadow (`shadow: {enabled: true}`):
// the desired state in effect, overlaid on the config file and saved in
// state_dir; the loop (agent/shadow) that reports and polls; and the
// reload a new desired state makes, the same as SIGHUP's.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/agent/shadow"
)

type remote struct {
	cfgPath  string
	stateDir string // of the first config: where the desired state is saved
	started  time.Time
	next     chan *config.Config // a config made by a new desired state, for wait
	done     chan struct{}       // the loop ended
	cancel   context.CancelFunc

	mu    sync.Mutex
	log   *slog.Logger
	state agent.RemoteConfig
	hash  string
	a     *agent.Agent // reported on; nil while agents are swapped
}

func newRemote(cfgPath string, cfg *config.Config, log *slog.Logger) *remote {
	return &remote{cfgPath: cfgPath, stateDir: cfg.StateDir, started: time.Now(),
		next: make(chan *config.Config, 1), log: log}
}

// overlay applies the saved desired state to cfg, just loaded from the
// file. When it no longer applies (the file changed under it), that is
// logged and reported, and the file's config runs as it is.
func (r *remote) overlay(cfg *config.Config) *config.Config {
	file, err := os.ReadFile(r.cfgPath)
	if err != nil {
		file = nil // the hash then covers the overlay only
	}
	saved, err := shadow.Load(r.stateDir)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.log.Error("remote configuration: running the config file alone", "err", err)
		r.state, r.hash = agent.RemoteConfig{Error: err.Error()}, configHash(file, nil)
		return cfg
	}
	r.state, r.hash = agent.RemoteConfig{Version: saved.Version}, configHash(file, nil)
	if len(saved.Desired) == 0 {
		return cfg
	}
	over, err := shadow.Overlay(file, r.cfgPath, saved.Desired, os.LookupEnv)
	if err != nil {
		r.log.Error("remote configuration no longer applies to the config file: running the file alone",
			"version", saved.Version, "err", err)
		r.state.Error = err.Error()
		return cfg
	}
	r.state.Applied, r.hash = saved.Desired, configHash(file, saved.Desired)
	r.log.Info("remote configuration from the shadow in effect", "version", saved.Version, "desired", jsonText(saved.Desired))
	return over
}

// desired takes a new desired state from the loop: checked against the
// file with its rules, then saved and handed to the service to reload.
// A refused one is logged and reported; the agent runs on as it is.
func (r *remote) desired(d map[string]any, version int64) {
	file, err := os.ReadFile(r.cfgPath)
	var cfg *config.Config
	if err == nil {
		if len(d) == 0 {
			cfg, err = config.Parse(r.cfgPath, file, os.LookupEnv)
		} else {
			cfg, err = shadow.Overlay(file, r.cfgPath, d, os.LookupEnv)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.log.Error("remote configuration refused: running on as before", "version", version, "err", err)
		r.state.Error = err.Error()
		return
	}
	if err := shadow.Save(r.stateDir, shadow.Saved{Version: version, Desired: d}); err != nil {
		// Applied now all the same; a restart would start without it
		// until the next poll.
		r.log.Warn("remote configuration applied but not saved", "err", err)
	}
	r.state, r.hash = agent.RemoteConfig{Version: version, Applied: maps.Clone(d)}, configHash(file, d)
	r.log.Info("remote configuration accepted: reloading", "version", version, "desired", jsonText(d))
	select { // the newest wins over one not yet taken
	case <-r.next:
	default:
	}
	r.next <- cfg
}

// startFailed says that the config last made could not start (the
// service went back to the one before): with desired state in it, that
// is reported as its error.
func (r *remote) startFailed(err error) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.state.Applied) > 0 {
		r.state.Error = "the config with this desired state could not start, the previous one runs: " + err.Error()
	}
}

// current is what Snapshot shows.
func (r *remote) current() *agent.RemoteConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state
	return &s
}

func (r *remote) facts() shadow.Facts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return shadow.Facts{Version: buildVersion(), Started: r.started, ConfigHash: r.hash, Remote: r.state}
}

func (r *remote) set(a *agent.Agent) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.a = a
	r.mu.Unlock()
}

func (r *remote) source() shadow.Source {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.a == nil {
		return nil
	}
	return r.a
}

// start runs the loop on cfg's shadow settings, once; a reload does not
// move it (as with the listeners).
func (r *remote) start(ctx context.Context, cfg *config.Config) {
	if r == nil || r.done != nil {
		return
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	l := &shadow.Loop{
		Thing: cfg.Shadow.Thing, Name: cfg.Shadow.Name,
		ReportEvery: cfg.Shadow.ReportInterval.D(), PollEvery: cfg.Shadow.PollInterval.D(),
		Log:    r.log.With("module", "shadow"),
		Source: r.source, Facts: r.facts, Desired: r.desired,
	}
	r.log.Info("device shadow on", "thing", l.Thing, "shadow", l.Name,
		"report_interval", l.ReportEvery, "poll_interval", l.PollEvery)
	go func() {
		defer close(r.done)
		l.Run(ctx)
	}()
}

func (r *remote) stop() {
	if r == nil || r.done == nil {
		return
	}
	r.cancel()
	<-r.done
}

// nextConfig is the channel wait selects on; nil (never ready) without
// a shadow.
func (r *remote) nextConfig() <-chan *config.Config {
	if r == nil {
		return nil
	}
	return r.next
}

// configHash names the config in effect: the file and the overlay.
func configHash(file []byte, desired map[string]any) string {
	h := sha256.New()
	h.Write(file)
	if len(desired) > 0 {
		b, _ := json.Marshal(desired) // map keys sorted: the same overlay, the same hash
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
