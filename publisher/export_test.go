package publisher

import "time"

// SetClock makes c's port fallback read the time from now (tests only).
func SetClock(c *Client, now func() time.Time) {
	c.ports.mu.Lock()
	c.ports.now = now
	c.ports.mu.Unlock()
}
