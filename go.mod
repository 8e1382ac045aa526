module github.com/sensor-agent/sensor-agent

go 1.26.0

require (
	golang.org/x/net v0.63.0
	gopkg.in/yaml.v3 v3.0.1
	periph.io/x/conn/v3 v3.7.3
	periph.io/x/devices/v3 v3.7.4
	periph.io/x/host/v3 v3.8.5
	pgregory.net/rapid v1.3.0
)

require (
	github.com/jonboulle/clockwork v0.5.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)
