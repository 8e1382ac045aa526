package doctor

import (
	"strings"
	"testing"

	"github.com/sensor-agent/sensor-agent/publisher"
)

func TestTunnelFailureOnlyNTLM(t *testing.T) {
	pe := &publisher.ProxyError{Reason: publisher.ProxyAuthRequired, Target: "abc-ats.iot.eu-west-1.amazonaws.com:443",
		Status: 407, StatusText: "Proxy Authentication Required", AuthSchemes: []string{"NTLM", "Negotiate"}}
	detail, hint := tunnelFailure(pe)
	for _, w := range []string{"requires authentication", "offers NTLM, Negotiate"} {
		if !strings.Contains(detail, w) {
			t.Errorf("detail %q lacks %q", detail, w)
		}
	}
	for _, w := range []string{"offers only NTLM, Negotiate", "Basic", "exemption for abc-ats.iot.eu-west-1.amazonaws.com:443"} {
		if !strings.Contains(hint, w) {
			t.Errorf("hint %q lacks %q", hint, w)
		}
	}
}
