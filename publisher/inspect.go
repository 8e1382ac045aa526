package publisher

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// TLS-inspection detection. Mutual TLS cannot pass a proxy or firewall
// that terminates TLS to look inside: it cannot present the device's
// certificate to AWS. Such a box shows itself by the certificate it presents
// in AWS's place, issued by its own CA. Two cases are caught:
//
//   - the chain does not verify (unknown authority): the usual case on a
//     device whose trust store lacks the inspection CA; the error names the
//     issuer, since it may also just be a missing ca_file;
//   - the chain verifies, but for an AWS host (*.amazonaws.com) not to one
//     of the roots AWS IoT's certificates chain to: the inspection CA was
//     installed in the trust store. The handshake is then stopped before the
//     device's certificate is sent.

// InspectionError says that the server's certificate was not issued by the
// endpoint's CA: a TLS-inspecting proxy or firewall is in the way.
type InspectionError struct {
	Host  string // the endpoint host
	Addr  string // host:port dialled
	Proxy string // the proxy URL (password redacted), "" when direct
	// Issuer names who issued the certificate presented, e.g.
	// `"Corp Inspection CA" (Example Corp)`.
	Issuer string
	// Verified: the chain verified against this device's trust store, but
	// not to Amazon (the inspection CA is installed).
	Verified bool
	Err      error // the verification error, nil when Verified
}

func (e *InspectionError) Unwrap() error { return e.Err }

func (e *InspectionError) Error() string {
	var b strings.Builder
	where := e.Addr
	if where == "" {
		where = e.Host
	}
	if e.Proxy != "" {
		where += " (through proxy " + e.Proxy + ")"
	}
	const cannot = "mutual TLS (the device certificate) cannot pass TLS inspection: ask IT for an inspection bypass (no TLS inspection) for "
	if e.Verified {
		fmt.Fprintf(&b, "server certificate of %s was issued by %s, not by Amazon: a TLS-inspecting proxy or firewall is in the way (its CA is in this device's trust store); %s%s",
			where, e.Issuer, cannot, e.Host)
	} else {
		fmt.Fprintf(&b, "server certificate of %s is not trusted: it was issued by %s, a CA this device does not trust. Unless that is your endpoint's own CA (then give it in ca_file), a TLS-inspecting proxy or firewall is in the way; %s%s",
			where, e.Issuer, cannot, e.Host)
	}
	return b.String()
}

// inspectionFromHandshake turns a handshake failure that shows a foreign
// issuer into an *InspectionError, or returns nil.
func inspectionFromHandshake(host, addr, proxy string, err error) *InspectionError {
	if ie, ok := errors.AsType[*InspectionError](err); ok {
		ie.Addr, ie.Proxy = addr, proxy
		return ie
	}
	verr, ok := errors.AsType[*tls.CertificateVerificationError](err)
	if !ok {
		return nil
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](verr.Err); !ok {
		return nil
	}
	return &InspectionError{Host: host, Addr: addr, Proxy: proxy, Issuer: issuerName(verr.UnverifiedCertificates), Err: err}
}

// checkAmazonIssuer is a VerifyConnection check for AWS hosts: one of the
// verified chains must end at a root that AWS IoT's certificates chain to.
func checkAmazonIssuer(host string, cs tls.ConnectionState) error {
	for _, chain := range cs.VerifiedChains {
		if len(chain) > 0 && isAmazonRoot(chain[len(chain)-1]) {
			return nil
		}
	}
	if len(cs.VerifiedChains) == 0 {
		return nil // not verified here (InsecureSkipVerify): nothing to judge
	}
	return &InspectionError{Host: host, Issuer: issuerName(cs.PeerCertificates), Verified: true}
}

// amazonRootOrgs are the organisations of the roots AWS IoT server
// certificates chain to: Amazon Root CA 1-4, their Starfield cross-signs,
// and the VeriSign/Symantec (now DigiCert) roots of legacy, non-ATS
// endpoints.
var amazonRootOrgs = []string{
	"Amazon",
	"Starfield Technologies, Inc.",
	"VeriSign, Inc.",
	"Symantec Corporation",
	"DigiCert Inc",
}

func isAmazonRoot(c *x509.Certificate) bool {
	for _, o := range c.Subject.Organization {
		if slices.Contains(amazonRootOrgs, o) {
			return true
		}
	}
	return false
}

// isAmazonHost reports whether host is an AWS endpoint, whose chain must end
// at an Amazon root.
func isAmazonHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return strings.HasSuffix(h, ".amazonaws.com") || strings.HasSuffix(h, ".amazonaws.com.cn")
}

// issuerName names the issuer of the first certificate, quoted, with its
// organisation, and the top of the chain when that is someone else:
// `"Corp Inspection CA" (Example Corp)`.
func issuerName(certs []*x509.Certificate) string {
	if len(certs) == 0 {
		return "an unknown issuer (no certificate presented)"
	}
	name := dnName(certs[0].Issuer.CommonName, certs[0].Issuer.Organization, certs[0].Issuer.String())
	if top := certs[len(certs)-1]; len(certs) > 1 && top.Issuer.String() != certs[0].Issuer.String() {
		name += ", chain up to " + dnName(top.Issuer.CommonName, top.Issuer.Organization, top.Issuer.String())
	}
	return name
}

func dnName(cn string, org []string, full string) string {
	if cn == "" {
		return fmt.Sprintf("%q", full)
	}
	s := fmt.Sprintf("%q", cn)
	if len(org) > 0 && org[0] != cn {
		s += " (" + org[0] + ")"
	}
	return s
}
