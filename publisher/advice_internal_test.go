package publisher

import "testing"

func TestArnScope(t *testing.T) {
	for _, tc := range []struct{ host, partition, region string }{
		{"abc123-ats.iot.us-west-2.amazonaws.com", "aws", "us-west-2"},
		{"ABC123-ATS.iot.eu-central-1.amazonaws.com.", "aws", "eu-central-1"},
		{"abc123.iot.ap-southeast-2.amazonaws.com", "aws", "ap-southeast-2"},
		{"abc123-ats.iot.cn-north-1.amazonaws.com.cn", "aws-cn", "cn-north-1"},
		{"abc123-ats.iot.us-gov-west-1.amazonaws.com", "aws", "us-gov-west-1"},
		{"localhost", "aws", "<region>"},
		{"iot.example.com", "aws", "<region>"},
	} {
		if p, r := arnScope(tc.host); p != tc.partition || r != tc.region {
			t.Errorf("arnScope(%q) = %q, %q, want %q, %q", tc.host, p, r, tc.partition, tc.region)
		}
	}
}
