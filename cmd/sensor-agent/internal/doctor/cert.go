package doctor

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
)

// The certificate step: the pair loads and matches, its validity, the
// key's mode (publisher.KeyModeProblem) and the CA file.

func (d *doctor) certificate(synced bool) {
	start := time.Now()
	e := d.cfg.Endpoint
	status := StatusPass
	var facts, hints []string
	worse := func(s string) {
		if s == StatusFail || status == StatusPass {
			status = s
		}
	}
	pair, err := publisher.LoadKeyPair(e.CertFile, e.KeyFile)
	if err != nil {
		worse(StatusFail)
		facts = append(facts, err.Error())
		hints = append(hints, certFileHint(err))
		d.certBad = "needs a usable certificate and key (see certificate)"
		d.leaf = readLeaf(e.CertFile) // for the clock step, when only the key is wrong
	} else {
		d.pair, d.leaf = &pair, pair.Leaf
	}
	now := d.now()
	if leaf := d.leaf; leaf != nil {
		facts = append(facts, fmt.Sprintf("%s: %q issued by %q, valid %s to %s", filepath.Base(e.CertFile),
			leaf.Subject.CommonName, leaf.Issuer.CommonName, day(leaf.NotBefore), day(leaf.NotAfter)))
		outside, what := CertOutsideValidity(leaf, now)
		d.certValid = outside == ""
		left := leaf.NotAfter.Sub(now)
		switch {
		case !d.certValid && synced:
			worse(StatusFail)
			facts = append(facts, outside)
			hints = append(hints, what)
		case !d.certValid:
			worse(StatusWarn)
			facts = append(facts, fmt.Sprintf("outside its validity by this device's clock (%s), which is not synchronised", now.UTC().Format(time.RFC3339)))
			hints = append(hints, "see clock")
		case left < expirySoon:
			worse(StatusWarn)
			facts = append(facts, fmt.Sprintf("expires in %s", days(left)))
			hints = append(hints, "rotate it soon: create a new certificate, attach the policy and the thing, replace the files")
		default:
			facts = append(facts, days(left)+" left")
		}
	}
	if d.pair != nil {
		facts = append(facts, fmt.Sprintf("key %s matches", filepath.Base(e.KeyFile)))
	}
	if fi, err := os.Stat(e.KeyFile); err == nil {
		facts = append(facts, fmt.Sprintf("key mode %04o", fi.Mode().Perm()))
		if problem := publisher.KeyModeProblem(e.KeyFile); problem != "" {
			worse(StatusWarn)
			hints = append(hints, problem)
		}
	}
	if e.CAFile != "" {
		if err := checkCAFile(e.CAFile); err != nil {
			worse(StatusFail)
			facts = append(facts, err.Error())
			hints = append(hints, "endpoint.ca_file must be a readable PEM bundle; leave it empty to trust only the system roots (which hold Amazon's)")
			if d.certBad == "" {
				d.certBad = "needs a usable ca_file (see certificate)"
			}
		} else {
			facts = append(facts, "ca_file "+filepath.Base(e.CAFile)+" ok")
		}
	}
	if d.leaf != nil {
		facts = append(facts, "AWS certificate id "+publisher.CertificateID(d.leaf))
	}
	d.result(StepCert, start, status, strings.Join(facts, "; "), strings.Join(hints, "; "))
}

// CertOutsideValidity says how now lies outside the certificate's
// validity and what to do about the certificate; "" when inside. doctor
// and check judge it alike.
func CertOutsideValidity(leaf *x509.Certificate, now time.Time) (outside, what string) {
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Sprintf("EXPIRED %s ago", days(now.Sub(leaf.NotAfter))),
			"create a new certificate for the thing (aws iot create-keys-and-certificate --set-as-active), attach the policy and the thing to it, and replace the two files: the agent picks them up without a restart"
	case now.Before(leaf.NotBefore):
		return fmt.Sprintf("NOT VALID YET (valid in %s)", days(leaf.NotBefore.Sub(now))),
			"the certificate starts in the future: issue one valid now"
	}
	return "", ""
}

// CertValidityProblem is check's verdict on the device certificate's
// validity at now: "" inside it, else what is wrong, with the dates and
// the clock. Outside it, TLS fails either way (AWS refuses the
// certificate, or a wrong clock fails the server's), so check fails; but
// the clock may be what is wrong, and the message says so.
func CertValidityProblem(file string, leaf *x509.Certificate, now time.Time, synced bool, how string) string {
	outside, what := CertOutsideValidity(leaf, now)
	if outside == "" {
		return ""
	}
	msg := fmt.Sprintf("certificate %s (%q): %s by this device's clock, which says %s; the certificate is valid from %s to %s. TLS with AWS IoT fails until this is fixed. ",
		file, leaf.Subject.CommonName, outside, now.UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	if synced {
		return msg + "The clock is " + how + ", so the certificate is what is wrong: " + what
	}
	return msg + "The clock is " + how + ": a Raspberry Pi has no real-time clock and may boot with a wrong time, so the clock may be what is wrong; " +
		"let NTP set it (timedatectl timesync-status) or set it by hand (date -s), then check again. If the time is right: " + what
}

func certFileHint(err error) string {
	switch msg := err.Error(); {
	case errors.Is(err, fs.ErrNotExist):
		return "check endpoint.cert_file and endpoint.key_file: the files downloaded when the thing's certificate was created"
	case errors.Is(err, fs.ErrPermission):
		return "the agent's user must be able to read both files: run doctor as that user (or root) and check owner and mode"
	case strings.Contains(msg, "does not match"):
		return "use the private key downloaded together with this certificate (private.pem.key)"
	case strings.Contains(msg, "swapped"):
		return "swap endpoint.cert_file and endpoint.key_file"
	case strings.Contains(msg, "encrypted"):
		return "decrypt the key once: openssl pkey -in KEY -out KEY.plain, and keep it mode 0600"
	}
	return "both files must be PEM as AWS IoT issues them (device.pem.crt, private.pem.key)"
}

// readLeaf parses the first certificate in file, nil if it cannot.
func readLeaf(file string) *x509.Certificate {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil
			}
			return c
		}
	}
}

func checkCAFile(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("ca_file: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return fmt.Errorf("ca_file %s: no PEM certificates found", file)
	}
	return nil
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

func days(d time.Duration) string {
	n := int(d.Hours() / 24)
	if n == 1 {
		return "1 day"
	}
	if n == 0 && d > 0 {
		return "less than a day"
	}
	return fmt.Sprintf("%d days", n)
}
