package iotemu

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sensor-agent/sensor-agent/publisher"
)

// File names in a PKI directory. The device files are named the way the
// AWS console names a thing's downloaded certificate and key.
const (
	CAFile            = "ca.pem"
	ServerCertFile    = "server.pem"
	ServerKeyFile     = "server.key"
	DeviceCertFile    = "device.pem.crt"
	DeviceKeyFile     = "private.pem.key"
	UntrustedCertFile = "untrusted.pem.crt"
	UntrustedKeyFile  = "untrusted.pem.key"
)

var pkiFiles = []string{CAFile, ServerCertFile, ServerKeyFile, DeviceCertFile, DeviceKeyFile}

// certLifetime is long because an emulator directory is typically kept
// around for months of development.
const certLifetime = 10 * 365 * 24 * time.Hour

// PKI is the emulator's CA, its server certificate (localhost, 127.0.0.1,
// ::1) and one device certificate signed by the CA.
type PKI struct {
	Dir    string // "" when held in memory only
	CA     *x509.Certificate
	CAPool *x509.CertPool
	Server tls.Certificate
	Device tls.Certificate

	issuer *authority // the CA with its key; nil when loaded from Dir
}

// NewPKI loads the PKI from dir, or generates it and writes it there when
// dir holds none of its files. dir "" generates an in-memory PKI.
func NewPKI(dir string) (*PKI, error) {
	if dir == "" {
		return generatePKI("")
	}
	var present, missing []string
	for _, name := range pkiFiles {
		_, err := os.Stat(filepath.Join(dir, name))
		switch {
		case err == nil:
			present = append(present, name)
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, name)
		default:
			return nil, fmt.Errorf("emulator PKI: %w", err)
		}
	}
	switch {
	case len(present) == 0:
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("emulator PKI: %w", err)
		}
		return generatePKI(dir)
	case len(missing) > 0:
		return nil, fmt.Errorf("emulator PKI %s: has %s but lacks %s: restore them or remove the directory to regenerate",
			dir, strings.Join(present, ", "), strings.Join(missing, ", "))
	}
	return loadPKI(dir)
}

// Path returns the path of one of the PKI's files, "" when in memory.
func (p *PKI) Path(name string) string {
	if p.Dir == "" {
		return ""
	}
	return filepath.Join(p.Dir, name)
}

// ClientTLSConfig returns a client configuration that trusts the emulator's
// CA and presents the device certificate, offering x-amzn-http-ca if alpn.
// It is for raw HTTP clients in tests.
func (p *PKI) ClientTLSConfig(alpn bool) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      p.CAPool,
		Certificates: []tls.Certificate{p.Device},
		ServerName:   "localhost",
	}
	if alpn {
		cfg.NextProtos = []string{publisher.ALPNProtocol}
	}
	return cfg
}

// verifyClient checks a client's certificate chain against the CA.
func (p *PKI) verifyClient(rawCerts [][]byte) error {
	if len(rawCerts) == 0 {
		return errors.New("no client certificate")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		cert, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		certs[i] = cert
	}
	inter := x509.NewCertPool()
	for _, cert := range certs[1:] {
		inter.AddCert(cert)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         p.CAPool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return fmt.Errorf("client certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

func loadPKI(dir string) (*PKI, error) {
	p := &PKI{Dir: dir, CAPool: x509.NewCertPool()}
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("emulator PKI: %w", err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("emulator PKI: %s: no PEM certificate", p.Path(CAFile))
	}
	if p.CA, err = x509.ParseCertificate(block.Bytes); err != nil {
		return nil, fmt.Errorf("emulator PKI: %s: %w", p.Path(CAFile), err)
	}
	p.CAPool.AddCert(p.CA)
	if p.Server, err = loadPair(p, ServerCertFile, ServerKeyFile, x509.ExtKeyUsageServerAuth); err != nil {
		return nil, err
	}
	if p.Device, err = loadPair(p, DeviceCertFile, DeviceKeyFile, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, err
	}
	return p, nil
}

func loadPair(p *PKI, certName, keyName string, usage x509.ExtKeyUsage) (tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(p.Path(certName), p.Path(keyName))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("emulator PKI: %s/%s: %w", p.Path(certName), keyName, err)
	}
	_, err = pair.Leaf.Verify(x509.VerifyOptions{Roots: p.CAPool, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("emulator PKI: %s is not usable with %s (remove the directory to regenerate): %w",
			p.Path(certName), p.Path(CAFile), err)
	}
	return pair, nil
}

func generatePKI(dir string) (*PKI, error) {
	ca, err := newCA("sensor-agent emulator CA")
	if err != nil {
		return nil, err
	}
	server, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	device, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "emulated-device"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	p := &PKI{Dir: dir, CA: ca.cert, CAPool: x509.NewCertPool(), Server: server.pair, Device: device.pair, issuer: ca}
	p.CAPool.AddCert(ca.cert)
	if dir == "" {
		return p, nil
	}
	files := []struct {
		name string
		data []byte
		perm fs.FileMode
	}{
		{CAFile, ca.certPEM, 0o644},
		{ServerCertFile, server.certPEM, 0o644},
		{ServerKeyFile, server.keyPEM, 0o600},
		{DeviceCertFile, device.certPEM, 0o644},
		{DeviceKeyFile, device.keyPEM, 0o600},
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return nil, fmt.Errorf("emulator PKI: %w", err)
		}
	}
	return p, nil
}

// NewUntrustedClient writes a client certificate and key signed by a
// throwaway CA the emulator does not trust into dir, as untrusted.pem.crt
// and untrusted.pem.key, for testing that such clients are refused.
func NewUntrustedClient(dir string) (certFile, keyFile string, err error) {
	ca, err := newCA("untrusted CA")
	if err != nil {
		return "", "", err
	}
	kp, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "untrusted-device"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, UntrustedCertFile), filepath.Join(dir, UntrustedKeyFile)
	if err := writeFileAtomic(certFile, kp.certPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("untrusted client: %w", err)
	}
	if err := writeFileAtomic(keyFile, kp.keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("untrusted client: %w", err)
	}
	return certFile, keyFile, nil
}

type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
	// certPEM is the CA certificate in PEM.
	certPEM []byte
}

type keyPair struct {
	pair            tls.Certificate
	certPEM, keyPEM []byte
}

func newCA(name string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := createCert(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &authority{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func (a *authority) issue(tmpl *x509.Certificate) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for %s: %w", tmpl.Subject.CommonName, err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := createCert(tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		return nil, fmt.Errorf("create certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key for %s: %w", tmpl.Subject.CommonName, err)
	}
	return &keyPair{
		pair:    tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	}, nil
}

func createCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	// Backdated an hour to tolerate small clock differences.
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = tmpl.NotBefore.Add(certLifetime)
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
}

// writeFileAtomic writes via a temporary file so that a crash never leaves
// a truncated key behind.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
