//go:build linux

package main

import "time"

// AWS IoT Core meters HTTPS publishes in 5 KB steps of payload: a 6 KB
// message counts as two. Price: us-east-1, first billion messages a month,
// $1.00 per million (https://aws.amazon.com/iot-core/pricing/, 2026-12).
const (
	meterStep          = 5 * 1024
	pricePerMillionUSD = 1.00
	month              = 30 * 24 * time.Hour
)

// meteredMessages is how many messages AWS bills for one publish of size
// payload bytes (an empty payload still counts as one).
func meteredMessages(size int) int {
	if size <= meterStep {
		return 1
	}
	return (size + meterStep - 1) / meterStep
}

// monthlyBill extrapolates metered messages seen over window to a 30-day
// month: messages and US dollars.
func monthlyBill(metered int, window time.Duration) (perMonth, usd float64) {
	if window <= 0 {
		return 0, 0
	}
	perMonth = float64(metered) * float64(month) / float64(window)
	return perMonth, perMonth / 1e6 * pricePerMillionUSD
}
