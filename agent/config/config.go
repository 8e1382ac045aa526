// Package config loads the agent's YAML file strictly: an unknown key, a
// wrong type or a missing required field is an error naming the file, line
// and key. Durations ("30s"), sizes ("64KiB") and ${ENV} expansion are
// supported. The key names are the product's interface: keep them.
//
// Limits (limits.go): a file is one YAML document of at most 1 MiB, its
// aliases expand to at most 10,000 values, and an error lists the first 20
// problems and counts the rest.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sensor-agent/sensor-agent/publisher"
	"github.com/sensor-agent/sensor-agent/sensors"
)

// DefaultPath is where the packaged service looks for its config.
const DefaultPath = "/etc/sensor-agent/config.yaml"

// Config is the whole file.
type Config struct {
	DeviceID string   `yaml:"device_id"`
	StateDir string   `yaml:"state_dir"`
	LogLevel string   `yaml:"log_level"`
	Endpoint Endpoint `yaml:"endpoint"`
	Publish  Publish  `yaml:"publish"`
	Spool    Spool    `yaml:"spool"`
	Sensors  []Sensor `yaml:"sensors"`
	HTTP     HTTP     `yaml:"http"`
	Shadow   Shadow   `yaml:"shadow"`

	// File is the path the config was read from, for messages.
	File string `yaml:"-"`
	// Disabled names the sensors with enabled: false, left out of Sensors.
	Disabled []string `yaml:"-"`
}

// PublisherConfig is the publisher's configuration that the file
// prescribes: the one mapping from the file to the publisher, used by run,
// check, publish and doctor alike.
func (c *Config) PublisherConfig() publisher.Config {
	e := c.Endpoint
	return publisher.Config{
		Host: e.Host, Port: e.Port, ALPN: e.ALPN,
		CertFile: e.CertFile, KeyFile: e.KeyFile, CAFile: e.CAFile,
		Timeout: e.Timeout.D(), QoS: c.Publish.QoS,
		Proxy: e.Proxy, FallbackPort: e.FallbackPort,
	}
}

// Endpoint is the AWS IoT data endpoint and the device's credentials.
type Endpoint struct {
	Host     string   `yaml:"host"`
	Port     int      `yaml:"port"`
	ALPN     string   `yaml:"alpn"`
	CertFile string   `yaml:"cert_file"`
	KeyFile  string   `yaml:"key_file"`
	CAFile   string   `yaml:"ca_file"`
	Timeout  Duration `yaml:"timeout"`
	// Proxy is an http:// or https:// proxy URL, optionally with
	// user:password; "" means HTTPS_PROXY/https_proxy and NO_PROXY.
	Proxy string `yaml:"proxy"`
	// FallbackPort (e.g. 8443) is tried without ALPN when Port cannot be
	// reached; 0 = off.
	FallbackPort int `yaml:"fallback_port"`
}

// Publish says how readings become messages.
type Publish struct {
	Topic         string   `yaml:"topic"`
	QoS           int      `yaml:"qos"`
	Format        string   `yaml:"format"`
	MaxReadings   int      `yaml:"max_readings"`
	MaxBytes      Size     `yaml:"max_bytes"`
	FlushInterval Duration `yaml:"flush_interval"`
	// QueueBytes bounds the in-memory queue used when the spool cannot be
	// written (disk full, read-only); when full the oldest batch is dropped
	// and counted.
	QueueBytes Size `yaml:"queue_bytes"`
	// Health publishes a sensor's health record (a reading of type
	// "health") whenever it changes.
	Health bool `yaml:"health"`
	// MaxRate limits backlog requests per second after an outage, so
	// live data and the account's limits are not swamped; 0 = no limit.
	MaxRate float64 `yaml:"max_rate"`
}

// Spool is the durable on-disk buffer between sampling and publishing.
type Spool struct {
	Dir          string   `yaml:"dir"`
	MaxBytes     Size     `yaml:"max_bytes"`
	SyncInterval Duration `yaml:"sync_interval"`
}

// Sensor is one `sensors:` entry: the keys every sensor has, plus the
// driver's own options decoded into Opts.
type Sensor struct {
	Name     string   `yaml:"name"`
	Driver   string   `yaml:"driver"`
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	// Limits override the driver's plausible range per value.
	Limits map[string]sensors.Range `yaml:"limits"`
	// Calibrate corrects values: offset, scale, rename.
	Calibrate map[string]sensors.Calibration `yaml:"calibrate"`
	// Mux puts an I²C sensor behind a PCA9548 channel.
	Mux *sensors.Mux `yaml:"mux"`
	// Enabled false keeps the entry but takes no readings from it (set
	// remotely through the shadow, or to park a sensor); nil = true.
	Enabled *bool `yaml:"enabled"`

	// Opts is the value returned by the driver's NewOpts, filled from the
	// remaining keys.
	Opts any `yaml:"-"`
	// Line is where the entry starts, for messages.
	Line int `yaml:"-"`
}

var sensorType = reflect.TypeOf(Sensor{})

// Defaults holds the values used for keys the file leaves out.
func Defaults() Config {
	host, _ := os.Hostname()
	return Config{
		DeviceID: host,
		StateDir: "/var/lib/sensor-agent",
		LogLevel: "info",
		Endpoint: Endpoint{Port: 443, ALPN: "auto", Timeout: Duration(10 * time.Second), Proxy: "", FallbackPort: 0},
		Publish: Publish{
			Topic:         "sensors/{device}/{sensor}",
			QoS:           1,
			Format:        "batch",
			MaxReadings:   500,
			MaxBytes:      64 << 10,
			FlushInterval: Duration(10 * time.Second),
			QueueBytes:    8 << 20,
			MaxRate:       20,
			Health:        true,
		},
		Spool: Spool{MaxBytes: 64 << 20, SyncInterval: Duration(time.Second)},
		HTTP:  HTTP{History: Duration(DefaultHistory), HistoryMaxBytes: DefaultHistoryMaxBytes},
		Shadow: Shadow{Name: DefaultShadowName, ReportInterval: Duration(DefaultShadowInterval),
			PollInterval: Duration(DefaultShadowInterval)},
	}
}

// DefaultInterval is a sensor's interval when it gives none.
const DefaultInterval = 30 * time.Second

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	// Read no more than the limit allows: the file may be huge, or endless.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(data) > MaxFileSize {
		size := int64(len(data))
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		return nil, tooLarge(path, size)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse decodes and validates data; name is used in messages, lookup
// resolves ${VAR} references.
func Parse(name string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, tooLarge(name, int64(len(data)))
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the file is empty: see configs/example.yaml for a starting point", name)
		}
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if err := onlyDocument(name, dec); err != nil {
		return nil, err
	}
	cfg := Defaults()
	cfg.File = name
	d := &decoder{file: name, lines: map[string]int{}}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if err := d.checkAliases(root); err != nil {
		return nil, err
	}
	d.expandEnv(root, lookup)
	d.decodeStruct(root, reflect.ValueOf(&cfg).Elem(), "", nil)
	if err := d.err(); err != nil {
		return nil, err
	}
	v := &validator{d: d, rootLine: root.Line}
	v.validate(&cfg)
	if err := d.err(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// onlyDocument fails when the file goes on with another YAML document
// after "---", which would otherwise be silently left unread. An empty
// one (a trailing "---", comments) is harmless.
func onlyDocument(name string, dec *yaml.Decoder) error {
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if len(next.Content) == 1 && next.Content[0].Kind == yaml.ScalarNode && next.Content[0].Tag == "!!null" && next.Content[0].Value == "" {
			continue
		}
		return fmt.Errorf("%s:%d: a second YAML document starts here (---): a config is one document, and the agent would ignore this one; merge it into the first or remove the --- line", name, next.Line)
	}
}

// decodeSensor decodes the common keys, then the driver's own options.
func (d *decoder) decodeSensor(n *yaml.Node, s *Sensor, path string) {
	s.Line = n.Line
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, path, "want a mapping with at least name and driver, got a %s", kindName(n))
		return
	}
	common := structFields(sensorType)
	skip := map[string]bool{}
	var rest []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if _, ok := common[n.Content[i].Value]; !ok {
			skip[n.Content[i].Value] = true
			rest = append(rest, n.Content[i], n.Content[i+1])
		}
	}
	d.decodeStruct(n, reflect.ValueOf(s).Elem(), path, skip)
	if s.Driver == "" {
		return // reported by the validator
	}
	drv, ok := sensors.Lookup(s.Driver)
	if !ok {
		d.errorf(d.lines[join(path, "driver")], join(path, "driver"), "unknown driver %q%s; known drivers: %s",
			s.Driver, suggest(s.Driver, sensors.Names()), strings.Join(sensors.Names(), ", "))
		return
	}
	s.Opts = drv.NewOpts()
	rv := reflect.ValueOf(s.Opts)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic("config: driver " + s.Driver + ": NewOpts must return a pointer to a struct")
	}
	optNode := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Content: rest}
	before := len(d.errs)
	d.decodeStruct(optNode, rv.Elem(), path, nil)
	// Unknown-key messages for options should suggest and list the
	// common keys too.
	all := append(keysOf(common), keysOf(structFields(rv.Elem().Type()))...)
	sort.Strings(all)
	for i := before; i < len(d.errs); i++ {
		msg := d.errs[i].Error()
		if j := strings.Index(msg, ": unknown key"); j >= 0 && strings.Contains(msg, "known keys here: ") {
			key := msg[strings.LastIndex(msg[:j], ".")+1 : j]
			d.errs[i] = errors.New(msg[:j] + ": unknown key" + suggest(key, all) + "; keys for driver " + s.Driver + ": " + strings.Join(all, ", "))
		}
	}
}

type validator struct {
	d        *decoder
	rootLine int
}

// at reports a problem at the line of key path, or of its nearest parent.
func (v *validator) at(path, format string, args ...any) {
	line := v.rootLine
	for p := path; p != ""; {
		if l, ok := v.d.lines[p]; ok {
			line = l
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	v.d.errorf(line, path, format, args...)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

func (v *validator) validate(c *Config) {
	if c.DeviceID == "" {
		v.at("device_id", "is empty and the hostname is unknown: set device_id")
	} else if !nameRE.MatchString(c.DeviceID) {
		v.at("device_id", "%q may only hold letters, digits and _ . : - (it becomes part of the topic)", c.DeviceID)
	}
	if c.StateDir == "" {
		v.at("state_dir", "is empty: set a writable directory, e.g. /var/lib/sensor-agent")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		v.at("log_level", "%q: want debug, info, warn or error", c.LogLevel)
	}
	v.endpoint(&c.Endpoint)
	v.publish(c)
	v.spool(c)
	v.sensors(c.Sensors)
	v.enabledOnly(c)
	v.topics(c)
	v.http(&c.HTTP)
	v.shadow(c)
}

// topics renders publish.topic for every sensor, as the agent does when it
// starts: a topic within AWS IoT's limits as a template can pass them no
// more once {device}, {sensor} and {driver} are filled in.
func (v *validator) topics(c *Config) {
	tmpl, err := publisher.ParseTopicTemplate(c.Publish.Topic)
	if err != nil {
		return // reported by publish
	}
	if !nameRE.MatchString(c.DeviceID) {
		return // reported by validate
	}
	for i, s := range c.Sensors {
		if !nameRE.MatchString(s.Name) || s.Driver == "" {
			continue // reported by sensors
		}
		_, err := tmpl.Render(c.DeviceID, s.Name, s.Driver)
		if err == nil {
			continue
		}
		topic := strings.NewReplacer("{device}", c.DeviceID, "{sensor}", s.Name, "{driver}", s.Driver).Replace(c.Publish.Topic)
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // Render's error repeats the template, given here already
		}
		v.d.errorf(s.Line, fmt.Sprintf("sensors[%d]", i), "publish.topic %q gives this sensor the topic %q, which AWS IoT refuses: %v; shorten publish.topic, device_id or the sensor's name",
			c.Publish.Topic, topic, err)
	}
}

func (v *validator) endpoint(e *Endpoint) {
	if _, ok := v.d.lines["endpoint"]; !ok {
		v.at("endpoint", "missing required section: give host, cert_file and key_file of your AWS IoT thing")
		return
	}
	if e.Host == "" {
		v.at("endpoint.host", "missing required key: the account's data endpoint, from `aws iot describe-endpoint --endpoint-type iot:Data-ATS`")
	} else if strings.Contains(e.Host, "://") || strings.ContainsAny(e.Host, "/ ") {
		v.at("endpoint.host", "%q: give the bare host name, without https:// or a path", e.Host)
	}
	if e.Port < 1 || e.Port > 65535 {
		v.at("endpoint.port", "%d is not a port: use 443 (with ALPN) or 8443", e.Port)
	}
	switch e.ALPN {
	case "auto", "on", "off":
	default:
		v.at("endpoint.alpn", "%q: want auto, on or off (auto = on for port 443)", e.ALPN)
	}
	if e.CertFile == "" {
		v.at("endpoint.cert_file", "missing required key: the device certificate (PEM) downloaded when the thing was created")
	}
	if e.KeyFile == "" {
		v.at("endpoint.key_file", "missing required key: the device's private key (PEM)")
	}
	if e.Timeout <= 0 {
		v.at("endpoint.timeout", "must be positive, e.g. 10s")
	}
	if _, err := publisher.ParseProxyURL(e.Proxy); err != nil { // never echoes the password
		v.at("endpoint.proxy", "%v", err)
	}
	if e.FallbackPort < 0 || e.FallbackPort > 65535 || (e.FallbackPort != 0 && e.FallbackPort == e.Port) {
		v.at("endpoint.fallback_port", "%d: want another port than endpoint.port, e.g. 8443, or 0 for no fallback", e.FallbackPort)
	}
}

func (v *validator) publish(c *Config) {
	p := &c.Publish
	if _, err := publisher.ParseTopicTemplate(p.Topic); err != nil {
		v.at("publish.topic", "%v", err)
	}
	if p.QoS != 0 && p.QoS != 1 {
		v.at("publish.qos", "%d: AWS IoT over HTTPS accepts 0 or 1", p.QoS)
	}
	switch p.Format {
	case "batch", "single":
	default:
		v.at("publish.format", "%q: want batch or single", p.Format)
	}
	if p.MaxReadings < 1 {
		v.at("publish.max_readings", "must be at least 1")
	}
	if p.MaxBytes < 1024 || p.MaxBytes > publisher.MaxPayload {
		v.at("publish.max_bytes", "%d bytes: must be between 1KiB and 128KiB (AWS IoT's payload limit, %d bytes)", p.MaxBytes, publisher.MaxPayload)
	}
	if p.FlushInterval <= 0 {
		v.at("publish.flush_interval", "must be positive, e.g. 10s")
	}
	if p.MaxRate < 0 {
		v.at("publish.max_rate", "must not be negative (0 = no limit)")
	}
	if p.QueueBytes < p.MaxBytes {
		v.at("publish.queue_bytes", "%d bytes is smaller than publish.max_bytes (%d): the queue must hold at least one message", p.QueueBytes, p.MaxBytes)
	}
}

func (v *validator) spool(c *Config) {
	if c.Spool.Dir == "" && c.StateDir != "" {
		c.Spool.Dir = filepath.Join(c.StateDir, "spool")
	}
	if c.Spool.MaxBytes < 1<<20 {
		v.at("spool.max_bytes", "%d bytes is too small: give at least 1MiB (e.g. 64MiB)", c.Spool.MaxBytes)
	}
	if c.Spool.SyncInterval > Duration(time.Minute) {
		v.at("spool.sync_interval", "%s: a power cut loses up to this much data; use at most 1m (0 = sync every batch)", c.Spool.SyncInterval)
	}
}
