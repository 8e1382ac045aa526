package publisher

import (
	"fmt"
	"regexp"
	"strings"
)

// What to do about AWS's refusals, worded once for the publish error
// (Error.Error) and the doctor. The doctor knows more than a failed publish
// (whether ALPN was offered, the device certificate's id) and passes it in;
// the words grow more precise with it.

// MissingTokenHint says what to do about 403 Missing Authentication Token:
// AWS did not use the client certificate. alpnOffered is whether the client
// offered x-amzn-http-ca; nil when not known.
func MissingTokenHint(alpnOffered *bool) string {
	switch {
	case alpnOffered == nil:
		// AWS treats a certificate without the ALPN name on 443 as SigV4.
		return "on port 443 the client must offer the ALPN name " + ALPNProtocol + " (alpn on), or use port 8443"
	case *alpnOffered:
		return "ALPN " + ALPNProtocol + " was offered but did not reach AWS: something in the way removed it; ask IT for a bypass, or use port 8443 with endpoint.alpn: off"
	}
	return "on port 443 AWS uses the client certificate only when ALPN " + ALPNProtocol + " is offered: set endpoint.alpn: auto (or on), or use port 8443"
}

// PolicyHint says what to do about a 403 from AWS's policy check. With the
// endpoint's host and the certificate's id (certID), it names the ARNs;
// without (host ""), it says it in general.
func PolicyHint(host, topic, certID string) string {
	if host == "" {
		return "check that the certificate's IoT policy allows iot:Publish on this topic; over HTTPS there is no client id, so ${iot:ClientId} and ${iot:Connection.Thing.*} never match"
	}
	partition, region := arnScope(host)
	return fmt.Sprintf("the policy attached to the certificate must allow iot:Publish on arn:%s:iot:%s:<account-id>:topic/%s (see: aws iot list-attached-policies --target arn:%s:iot:%s:<account-id>:cert/%s); MQTT-only policy variables such as ${iot:Connection.Thing.ThingName} and ${iot:ClientId} never resolve over HTTPS: name the topics explicitly; or the certificate is not ACTIVE",
		partition, region, topic, partition, region, certID)
}

// InactiveCertHint says what to do when AWS does not accept the device
// certificate (401, or a TLS alert): certID is its AWS id, "" when not
// known.
func InactiveCertHint(certID string) string {
	if certID == "" {
		return "check that the client certificate is registered and ACTIVE in this account and region"
	}
	return "the certificate must be registered and ACTIVE in this account and region: aws iot describe-certificate --certificate-id " + certID
}

var regionRE = regexp.MustCompile(`\.iot\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(\.cn)?\.?$`)

// arnScope returns the ARN partition and region of an AWS IoT endpoint
// host (abc123-ats.iot.eu-west-1.amazonaws.com), "<region>" when it is
// not one.
func arnScope(host string) (partition, region string) {
	m := regionRE.FindStringSubmatch(strings.ToLower(host))
	if m == nil {
		return "aws", "<region>"
	}
	if m[2] != "" {
		return "aws-cn", m[1]
	}
	return "aws", m[1]
}
