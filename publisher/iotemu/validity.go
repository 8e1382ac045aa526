package iotemu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"time"
)

// IssueDeviceValidity is IssueDevice with the certificate's validity
// chosen, for tests of expired and not yet valid certificates: it writes
// <name>.pem.crt (valid from notBefore to notAfter, signed by the
// emulator's CA) and <name>.pem.key (mode 0600) into dir. The emulator
// refuses such a certificate outside its validity, as AWS does.
func (p *PKI) IssueDeviceValidity(dir, name string, notBefore, notAfter time.Time) (certFile, keyFile string, err error) {
	if p.issuer == nil {
		return "", "", errors.New("emulator PKI: cannot issue certificates: the CA key is only kept by the process that generated the PKI")
	}
	if name == "" || name != filepath.Base(name) {
		return "", "", fmt.Errorf("emulator PKI: device name %q must be a plain file name", name)
	}
	if !notAfter.After(notBefore) {
		return "", "", fmt.Errorf("emulator PKI: device %s: not after %s is not after not before %s", name, notAfter, notBefore)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate key for %s: %w", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.issuer.cert, key.Public(), p.issuer.key)
	if err != nil {
		return "", "", fmt.Errorf("create certificate for %s: %w", name, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("marshal key for %s: %w", name, err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem.crt"), filepath.Join(dir, name+".pem.key")
	if err := writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", fmt.Errorf("issue device %s: %w", name, err)
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return "", "", fmt.Errorf("issue device %s: %w", name, err)
	}
	return certFile, keyFile, nil
}
