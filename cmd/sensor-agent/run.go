package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sensor-agent/sensor-agent/agent"
	"github.com/sensor-agent/sensor-agent/agent/config"
	"github.com/sensor-agent/sensor-agent/agent/history"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// SIGHUP reloads the config. Caught first: its default action would
	// end the process if it came during start-up.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	fs := newFlagSet("run", stderr)
	cfgPath := fs.String("config", config.DefaultPath, "config file")
	idle := fs.Bool("exit-when-idle", false, "exit 0 once every sensor has stopped and everything taken is published")
	sysfs := fs.String("sysfs", "", "root of the sysfs tree (default /sys; tests point it at a fixture tree)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	slog.SetDefault(log) // periph drivers log through the std log package
	sd, err := newNotifier(os.Getenv)
	if err != nil {
		log.Warn("not telling systemd", "err", err)
	}
	wd, err := watchdogInterval(os.Getenv, os.Getpid())
	if err != nil {
		log.Warn("watchdog off", "err", err)
	}
	svc := &service{
		cfgPath: *cfgPath, stderr: stderr, sd: sd, hup: hup, watchdog: wd, getenv: os.Getenv,
		opts: agent.Options{Logger: log, SysFS: *sysfs, ExitWhenIdle: *idle},
	}
	if cfg.Shadow.Enabled {
		svc.remote = newRemote(*cfgPath, cfg, log)
		cfg = svc.remote.overlay(cfg)
		svc.opts.Remote = svc.remote.current
	}
	return svc.run(ctx, cfg)
}

// runAgent runs the agent's whole lifecycle (the demo's; `run` adds
// systemd and reloading around the same steps in service.run).
func runAgent(ctx context.Context, cfg *config.Config, opts agent.Options) error {
	if cfg.HTTP.Listen != "" {
		opts.History = &history.Store{}
	}
	a := agent.New(cfg, opts)
	if err := a.Provision(); err != nil {
		return err
	}
	defer a.Cleanup()
	if cfg.HTTP.Listen != "" {
		if srv, err := startHTTP(cfg, a, opts.History, opts.Logger); err == nil {
			defer srv.close()
		}
	}
	logStarted(opts.Logger, "sensor-agent started", cfg)
	err := a.Run(ctx)
	opts.Logger.Info("sensor-agent stopped")
	return err
}

func logStarted(log *slog.Logger, msg string, cfg *config.Config) {
	log.Info(msg, "version", buildVersion(), "device", cfg.DeviceID,
		"config", cfg.File, "endpoint", fmt.Sprintf("%s:%d", cfg.Endpoint.Host, cfg.Endpoint.Port),
		"sensors", len(cfg.Sensors))
}

// statusEvery is how often STATUS= is sent to systemd.
const statusEvery = 10 * time.Second

// service is `run`: the agent under systemd. It tells systemd when it is
// ready, what it is doing and that it is alive (notify.go, watchdog.go),
// and on SIGHUP swaps the agent for one on the reloaded config: the
// sensors are opened anew, the spool is closed and opened again with
// everything in it.
type service struct {
	cfgPath  string
	stderr   io.Writer
	sd       *notifier
	hup      <-chan os.Signal
	watchdog time.Duration // WatchdogSec; 0 = off
	opts     agent.Options
	getenv   func(string) string
	status   *statusServer // nil until the first agent is provisioned, or when it cannot listen
	http     *httpServer   // http.listen; nil when off or when it cannot listen
	remote   *remote       // the Device Shadow; nil when off
}

// newAgent makes the agent for cfg, taking over from old (a reload).
func (s *service) newAgent(cfg *config.Config, old *agent.Agent) *agent.Agent {
	if cfg.HTTP.Listen != "" && s.opts.History == nil {
		s.opts.History = &history.Store{} // kept across reloads, as the listener is
	}
	opts := s.opts
	opts.Previous = old
	return agent.New(cfg, opts)
}

func (s *service) run(ctx context.Context, cfg *config.Config) error {
	var prev *config.Config // the config running before a reload, to fall back on
	// old is the agent a reload replaces: its Run has returned, and the
	// next agent takes over its lock, spool, counter and memory.
	var old *agent.Agent
	defer s.closeListeners()
	for reload := false; ; reload = true {
		s.handOver(nil) // the next agent takes the storage over in Provision
		a := s.newAgent(cfg, old)
		if err := a.Provision(); err != nil {
			if prev == nil {
				if old != nil {
					old.Cleanup()
				}
				s.notify(sdStopping)
				return err
			}
			s.opts.Logger.Error("reload: the new config cannot start; going on with the previous one",
				"config", cfg.File, "err", err)
			s.remote.startFailed(err)
			cfg, prev = prev, nil
			s.setLogger(cfg)
			continue
		}
		if old != nil {
			old.Cleanup()
			old = nil
		}
		s.serveStatus(a, cfg)
		s.serveHTTP(a, cfg)
		s.remote.set(a)
		s.remote.start(ctx, cfg)
		msg := "sensor-agent started"
		if reload {
			msg = "config reloaded"
		}
		logStarted(s.opts.Logger, msg, cfg)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Run(runCtx) }()
		// Ready: config loaded, spool open, sensors scheduled.
		s.notify(sdReady, sdStatus(a.Progress().StatusText()))
		// Start-up is over: let go of the code only it ran (memory.go).
		stopRelease := releaseAfterStart(s.opts.Logger, cfg.Publish.FlushInterval.D()+10*time.Second)
		// Not under ctx: pings go on during the last send after SIGTERM.
		supCtx, stopSup := context.WithCancel(context.WithoutCancel(ctx))
		supDone := make(chan struct{})
		go func() {
			defer close(supDone)
			s.supervisor(a, cfg).run(supCtx)
		}()
		next, exited, err := s.wait(ctx, done)
		if next == nil {
			s.notify(sdStopping)
			if !exited {
				err = <-done // Run makes its last send within the shutdown deadline
			}
		} else {
			s.notify(sdReloading, sdStatus("reloading "+s.cfgPath))
			s.opts.Logger.Info("reloading: stopping the sensors; the spool and what memory holds go to the new config", "config", s.cfgPath)
			stop()
			err = <-done
		}
		stop()
		stopSup()
		stopRelease()
		<-supDone
		if next == nil {
			s.closeListeners() // before Cleanup: a snapshot reads the storage
			a.Cleanup()
			s.opts.Logger.Info("sensor-agent stopped")
			return err
		}
		if err != nil {
			s.opts.Logger.Error("reload: the agent stopped with an error", "err", err)
		}
		old = a
		prev, cfg = cfg, next
		s.setLogger(cfg)
	}
}

// wait waits for the agent to end by itself (exited, with its error), for
// ctx to end (SIGTERM), or for SIGHUP with a config that loads (next). A
// config that does not load is logged and the running agent goes on.
func (s *service) wait(ctx context.Context, done <-chan error) (next *config.Config, exited bool, err error) {
	for {
		select {
		case err := <-done: // -exit-when-idle, or a fatal error
			return nil, true, err
		case <-ctx.Done():
			return nil, false, nil
		case <-s.hup:
			cfg, err := config.Load(s.cfgPath)
			if err != nil {
				s.opts.Logger.Error("reload: the config does not load; going on with the running one", "err", err)
				s.notify(sdStatus("reload failed, running the previous config: " + err.Error()))
				continue
			}
			if s.remote != nil {
				cfg = s.remote.overlay(cfg)
			}
			return cfg, false, nil
		case cfg := <-s.remote.nextConfig(): // new desired state, checked
			return cfg, false, nil
		}
	}
}

// serveStatus has the status socket report on a, listening first if
// needed: on the first agent's config (its lock on state_dir is held by
// then). A socket that cannot listen is logged; the agent runs without.
func (s *service) serveStatus(a *agent.Agent, cfg *config.Config) {
	if s.status == nil {
		path, err := serveSocketPath(s.getenv, cfg.StateDir)
		if err == nil {
			s.status, err = listenStatus(path, s.opts.Logger)
		}
		if err != nil {
			s.opts.Logger.Warn("`sensor-agent status` will not work", "err", err)
			return
		}
		s.status.set(a) // before the line: whoever acts on it finds the agent
		s.opts.Logger.Info("status socket", "socket", path)
		return
	}
	s.status.set(a)
}

func (s *service) supervisor(a *agent.Agent, cfg *config.Config) *supervisor {
	every := s.watchdog / 2 // sd_watchdog_enabled(3): ping at half the timeout
	return &supervisor{
		sd: s.sd, log: s.opts.Logger,
		snapshot:    a.Progress,
		now:         time.Now,
		statusEvery: statusEvery, watchdogEvery: every,
		limits: agent.ProgressLimitsFor(cfg, every),
	}
}

func (s *service) setLogger(cfg *config.Config) {
	s.opts.Logger = newLogger(s.stderr, cfg.LogLevel)
	slog.SetDefault(s.opts.Logger)
}

func (s *service) notify(lines ...string) {
	if err := s.sd.send(lines...); err != nil {
		s.opts.Logger.Warn("telling systemd", "err", err)
	}
}
