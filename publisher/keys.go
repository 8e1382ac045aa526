package publisher

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
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

// warnValidity only warns: a Raspberry Pi has no RTC, so before NTP syncs
// the clock can make a good certificate look expired or not yet valid.
func warnValidity(logger *slog.Logger, file string, leaf *x509.Certificate) {
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		logger.Warn("client certificate has expired (or the clock is wrong)", "file", file, "not_after", leaf.NotAfter)
	case now.Before(leaf.NotBefore):
		logger.Warn("client certificate is not valid yet (or the clock is wrong)", "file", file, "not_before", leaf.NotBefore)
	case leaf.NotAfter.Sub(now) < 30*24*time.Hour:
		logger.Warn("client certificate expires soon", "file", file, "not_after", leaf.NotAfter)
	}
}
