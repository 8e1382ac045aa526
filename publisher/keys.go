package publisher

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// loadKeyPair loads a PEM certificate (chain) and private key, with errors
// that say which file is wrong and how, unlike tls.LoadX509KeyPair.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	if certFile == "" {
		return tls.Certificate{}, errors.New("client certificate file is not set")
	}
	if keyFile == "" {
		return tls.Certificate{}, errors.New("client key file is not set")
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read client certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read client key: %w", err)
	}
	chain, err := parseCertChain(certPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client certificate %s: %w", certFile, err)
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client key %s: %w", keyFile, err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client certificate %s: %w", certFile, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return tls.Certificate{}, fmt.Errorf("client key %s does not match certificate %s", keyFile, certFile)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

func parseCertChain(data []byte) ([][]byte, error) {
	var chain [][]byte
	var other []string
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			chain = append(chain, block.Bytes)
			continue
		}
		other = append(other, block.Type)
	}
	switch {
	case len(chain) > 0:
		return chain, nil
	case len(other) == 0:
		return nil, errors.New("not PEM (no -----BEGIN CERTIFICATE----- block)")
	case strings.Contains(strings.Join(other, " "), "PRIVATE KEY"):
		return nil, errors.New("holds a private key, not a certificate (are the certificate and key files swapped?)")
	}
	return nil, fmt.Errorf("no CERTIFICATE block (found %s)", strings.Join(other, ", "))
}

func parsePrivateKey(data []byte) (crypto.Signer, error) {
	var other []string
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Headers["Proc-Type"] == "4,ENCRYPTED" || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("is encrypted; an unattended agent needs an unencrypted key")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			// e.g. "EC PARAMETERS", which openssl writes before the key.
			other = append(other, block.Type)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", key)
		}
		return signer, nil
	}
	switch {
	case len(other) == 0:
		return nil, errors.New("not PEM (no -----BEGIN ... PRIVATE KEY----- block)")
	case strings.Contains(strings.Join(other, " "), "CERTIFICATE"):
		return nil, errors.New("holds a certificate, not a private key (are the certificate and key files swapped?)")
	}
	return nil, fmt.Errorf("no private key block (found %s)", strings.Join(other, ", "))
}

const (
	// certPollInterval is how often a running client looks at its
	// certificate and key files (two stat calls) for a rotation.
	certPollInterval = 5 * time.Second
	// certHandshakeCheck: a new connection looks at the files before its
	// handshake unless they were looked at this recently.
	certHandshakeCheck = time.Second
	// expiryWarning is how long before expiry the certificate is warned
	// about; the warning (an error once expired) repeats every expiryRepeat.
	expiryWarning = 30 * 24 * time.Hour
	expiryRepeat  = 24 * time.Hour
)

// certSource hands each TLS handshake the current client certificate
// (tls.Config.GetClientCertificate) and reloads the pair when its files
// change, so a certificate can be rotated under a running agent. A new pair
// is used only once both files load and match; until then the previous pair
// stays in use. It also logs the certificate's expiry: at start, 30 days
// ahead and daily from then on.
type certSource struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time
	pollEvery         time.Duration
	// staleFor is how long after a change idle connections keep being
	// closed at each check: a request in flight during the change gives
	// its connection, made with the previous certificate, back to the pool
	// up to a request timeout later.
	staleFor time.Duration

	stop context.CancelFunc // nil until watch
	done chan struct{}

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     pairStamp // the file versions cert was loaded from
	bad       pairStamp // the file versions that last failed to load
	badErr    error     // why; nil when the files are in use
	checked   time.Time // last look at the files
	changedAt time.Time // last change of pair; zero if none
	closeIdle func()    // closes the client's idle connections
	validity  validity  // last validity logged
	loggedAt  time.Time // when
}

// newCertSource loads the pair named in cfg and logs its expiry.
func newCertSource(cfg Config, logger *slog.Logger) (*certSource, error) {
	return newCertSourceClock(cfg, logger, time.Now)
}

// newCertSourceClock is newCertSource with the clock injected (tests).
func newCertSourceClock(cfg Config, logger *slog.Logger, now func() time.Time) (*certSource, error) {
	s := &certSource{
		certFile: cfg.CertFile, keyFile: cfg.KeyFile, log: logger, now: now,
		pollEvery: certPollInterval, staleFor: cfg.Timeout + 2*certPollInterval,
	}
	// Stat before reading: a change in between is then seen as a change.
	stamp, statErr := statPair(s.certFile, s.keyFile)
	pair, err := loadKeyPair(s.certFile, s.keyFile)
	if err != nil {
		return nil, err
	}
	if statErr != nil {
		stamp = pairStamp{} // read again at the first check
	}
	s.cert, s.stamp = &pair, stamp
	t := s.now()
	s.checked = t
	s.log.Info("client certificate", s.attrs(pair.Leaf, t)...)
	s.logValidityLocked(t)
	if problem := KeyModeProblem(s.keyFile); problem != "" {
		s.log.Warn(problem)
	}
	return s, nil
}

// watch makes s close the client's idle connections (closeIdle) when
// the pair changes, and starts looking at the files every pollEvery until
// close. It returns s.
func (s *certSource) watch(closeIdle func()) *certSource {
	s.mu.Lock()
	s.closeIdle = closeIdle
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		// At the wall clock's multiples of pollEvery, as the sensors'
		// readings, so the check shares their wake-ups.
		t := time.NewTimer(untilNext(time.Now(), s.pollEvery))
		defer t.Stop()
		for {
			select {
			case <-t.C:
				t.Reset(untilNext(time.Now(), s.pollEvery))
				_, _ = s.check()
			case <-ctx.Done():
				return
			}
		}
	}()
	return s
}

// close stops the polling started by watch. It may be called again.
func (s *certSource) close() {
	if s == nil || s.stop == nil {
		return
	}
	s.stop()
	<-s.done
}

// get is the tls.Config's GetClientCertificate.
func (s *certSource) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	due := s.now().Sub(s.checked) >= certHandshakeCheck
	s.mu.Unlock()
	if due {
		_, _ = s.check()
	}
	return s.current(), nil
}

func (s *certSource) current() *tls.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert
}

// check looks at the files and switches to a new pair if they hold one.
// changed reports a switch; err says why changed files cannot be used
// (the previous pair is kept, and they are read again when they change).
// After a switch, and for staleFor after it, idle connections are closed
// so that the next request handshakes with the new certificate.
func (s *certSource) check() (changed bool, err error) {
	s.mu.Lock()
	now := s.now()
	s.checked = now
	changed, err = s.reloadLocked(now)
	s.logValidityLocked(now)
	stale := !s.changedAt.IsZero() && now.Sub(s.changedAt) < s.staleFor
	closeIdle := s.closeIdle
	s.mu.Unlock()
	if (changed || stale) && closeIdle != nil {
		closeIdle()
	}
	return changed, err
}

func (s *certSource) reloadLocked(now time.Time) (bool, error) {
	stamp, err := statPair(s.certFile, s.keyFile)
	if err == nil {
		if stamp.equal(s.stamp) {
			if s.badErr != nil {
				s.log.Info("client certificate files are back as they were: the certificate is unchanged", "file", s.certFile)
				s.bad, s.badErr = pairStamp{}, nil
			}
			return false, nil
		}
		if s.badErr != nil && stamp.equal(s.bad) {
			return false, s.badErr // already said; wait for the next change
		}
		var pair tls.Certificate
		if pair, err = loadKeyPair(s.certFile, s.keyFile); err == nil {
			return s.adoptLocked(pair, stamp, now), nil
		}
	}
	// Typically a rotation in progress: one file replaced, not the other
	// yet, or a file being written. Said once per distinct problem.
	if s.badErr == nil || s.badErr.Error() != err.Error() {
		s.log.Warn("client certificate files changed but cannot be used: still using the previous certificate; they are read again when they change",
			"err", err, "certificate_id", certID(s.cert.Leaf))
	}
	s.bad, s.badErr = stamp, err
	return false, err
}

// adoptLocked switches to pair unless it is the certificate in use.
func (s *certSource) adoptLocked(pair tls.Certificate, stamp pairStamp, now time.Time) bool {
	prev := s.cert
	wasBad := s.badErr != nil
	s.stamp, s.bad, s.badErr = stamp, pairStamp{}, nil
	if slices.EqualFunc(prev.Certificate, pair.Certificate, bytes.Equal) {
		// Touched, or rewritten with the same content (the key matches the
		// same certificate, so it is the same key).
		if wasBad {
			s.log.Info("client certificate files are usable again: the certificate is unchanged", "file", s.certFile)
		}
		return false
	}
	s.cert, s.changedAt = &pair, now
	s.log.Info("client certificate reloaded: new connections present it",
		append(s.attrs(pair.Leaf, now), "previous_certificate_id", certID(prev.Leaf))...)
	s.validity = validityUnknown // warn again if the new one expires soon too
	return true
}

func (s *certSource) attrs(leaf *x509.Certificate, now time.Time) []any {
	return []any{"file", s.certFile, "subject", leaf.Subject.CommonName, "certificate_id", certID(leaf),
		"not_after", leaf.NotAfter.UTC(), "days_left", daysLeft(leaf, now)}
}

// certID is the SHA-256 of the certificate, which is how AWS IoT names a
// certificate (aws iot describe-certificate --certificate-id).
func certID(leaf *x509.Certificate) string {
	sum := sha256.Sum256(leaf.Raw)
	return hex.EncodeToString(sum[:])
}

// daysLeft is the number of whole days until the certificate expires,
// negative once it has.
func daysLeft(leaf *x509.Certificate, now time.Time) int {
	return int(math.Floor(leaf.NotAfter.Sub(now).Hours() / 24))
}

type validity int

const (
	validityUnknown validity = iota
	validityOK
	validitySoon
	validityExpired
	validityNotYet
)

func validityOf(leaf *x509.Certificate, now time.Time) validity {
	switch {
	case now.After(leaf.NotAfter):
		return validityExpired
	case now.Before(leaf.NotBefore):
		return validityNotYet
	case leaf.NotAfter.Sub(now) < expiryWarning:
		return validitySoon
	}
	return validityOK
}

// logValidityLocked logs the certificate's validity when it changed
// (including through a clock step) and, while it expires within 30 days or
// has expired, once every expiryRepeat. It only logs: a Raspberry Pi has no
// RTC, so before the clock is synchronised a good certificate can look
// expired or not yet valid.
func (s *certSource) logValidityLocked(now time.Time) {
	leaf := s.cert.Leaf
	v := validityOf(leaf, now)
	repeat := (v == validitySoon || v == validityExpired) && now.Sub(s.loggedAt) >= expiryRepeat
	if v == s.validity && !repeat {
		return
	}
	prev := s.validity
	s.validity, s.loggedAt = v, now
	attrs := []any{"file", s.certFile, "certificate_id", certID(leaf), "not_after", leaf.NotAfter.UTC(), "days_left", daysLeft(leaf, now)}
	switch v {
	case validityOK:
		if prev != validityUnknown {
			s.log.Info("client certificate is valid", attrs...)
		}
	case validitySoon:
		s.log.Warn("client certificate expires soon: rotate it", attrs...)
	case validityExpired:
		s.log.Error("client certificate has expired (or the clock is wrong): AWS IoT refuses it; rotate it", attrs...)
	case validityNotYet:
		s.log.Warn("client certificate is not valid yet (or the clock is wrong)",
			"file", s.certFile, "certificate_id", certID(leaf), "not_before", leaf.NotBefore.UTC())
	}
}

// pairStamp identifies the versions of the two files: a rotation changes
// the inode (a rename), or the size or modification time (a rewrite).
type pairStamp struct{ cert, key os.FileInfo }

func statPair(certFile, keyFile string) (pairStamp, error) {
	c, err := os.Stat(certFile)
	if err != nil {
		return pairStamp{}, fmt.Errorf("client certificate: %w", err)
	}
	k, err := os.Stat(keyFile)
	if err != nil {
		return pairStamp{}, fmt.Errorf("client key: %w", err)
	}
	return pairStamp{c, k}, nil
}

func (p pairStamp) equal(q pairStamp) bool {
	return sameVersion(p.cert, q.cert) && sameVersion(p.key, q.key)
}

func sameVersion(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// ReloadCertificate looks at the certificate and key files now, as the
// client otherwise does every few seconds and before each new connection,
// and switches to the pair they hold if it changed and both files load
// and match. changed reports a switch: idle connections are then closed
// so that the next publish handshakes with the new certificate. err says
// why changed files cannot be used; the previous pair stays in use.
func (c *Client) ReloadCertificate() (changed bool, err error) { return c.certs.check() }

// Certificate returns the client certificate new connections present.
func (c *Client) Certificate() *x509.Certificate { return c.certs.current().Leaf }

// untilNext is the time from now to the next wall-clock multiple of d.
func untilNext(now time.Time, d time.Duration) time.Duration {
	return now.Truncate(d).Add(d).Sub(now)
}
