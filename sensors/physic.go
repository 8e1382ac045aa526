package sensors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/physic"
)

// The Read shared by the drivers around a periph physic.SenseEnv device
// (aht20, bme280/bmp280/bmp180, hdc302x, mcp9808, tmp102).

// envDevice is what envReader needs of a periph device.
type envDevice interface {
	Sense(*physic.Env) error
	halter
}

// envReader is one environmental sensor's Read: wait until ready (a first
// conversion after open; zero for none) or ctx ends — periph takes no
// context —, Sense, convert, and reject values outside the limits.
type envReader struct {
	id      string // "greenhouse: aht20 /dev/i2c-1 0x38", prefix of every error
	ready   time.Time
	convert func(physic.Env) Values
	limits  map[string]Range
	// clean rewrites periph's error text (bmxx80's prefixes); nil keeps it.
	clean func(error) error

	mu  sync.Mutex // Read and Close may race when the scheduler gives up on a Read
	dev envDevice  // nil once closed
}

// Read implements Sensor's Read for the embedding sensor.
func (s *envReader) Read(ctx context.Context) (Values, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev == nil {
		return nil, fmt.Errorf("%s: read: sensor is closed", s.id)
	}
	if err := sleepUntil(ctx, s.ready); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	var e physic.Env
	if err := s.dev.Sense(&e); err != nil {
		if s.clean != nil {
			err = s.clean(err)
		}
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	v := s.convert(e)
	if err := checkLimits(v, s.limits); err != nil {
		return nil, fmt.Errorf("%s: read: %w", s.id, err)
	}
	return v, nil
}

// envTemperature and envTemperatureHumidity convert a physic.Env.
func envTemperature(e physic.Env) Values {
	return Values{TemperatureC: round2(e.Temperature.Celsius())}
}

func envTemperatureHumidity(e physic.Env) Values {
	return Values{
		TemperatureC: round2(e.Temperature.Celsius()),
		HumidityPct:  round2(float64(e.Humidity) / float64(physic.PercentRH)),
	}
}

// trimPrefixes drops the chip-name prefixes a periph driver adds once per
// layer (bmxx80: "bme280: ", and ": " before it knows the chip): our
// prefix already names the sensor and chip. It is for drivers that format
// causes with %v, where rebuilding the error loses no chain.
func trimPrefixes(err error, prefixes ...string) error {
	msg := err.Error()
	t := msg
	for {
		next := strings.TrimPrefix(t, ": ")
		for _, p := range prefixes {
			next = strings.TrimPrefix(next, p)
		}
		if next == t {
			break
		}
		t = next
	}
	if t == msg {
		return err
	}
	return errors.New(t)
}
