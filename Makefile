# sensor-agent: make demo runs it, make test tests it.
GO       ?= go
# The one version string (systemd/packaging/version.sh): the git tag, or
# git describe's v1.2.0-3-gabc1234; untagged v0.0.0-<commits>-g<hash>.
VERSION  ?= $(shell sh systemd/packaging/version.sh)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BUILD    := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
BIN      := bin/sensor-agent
DEMO_FLAGS ?=

.PHONY: all build lint test demo cross bench compare powercut torture clean dist deb dist-check install licenses

all: build

build:
	$(BUILD) -o $(BIN) ./cmd/sensor-agent

# The README's test command; CI runs it through .ci/run. It starts with
# the lint gate, then runs every test with the race detector.
test: lint
	$(GO) test -race -count=1 -timeout 30m ./...

# The gate a reviewer checks first: go.mod tidy, gofmt, go vet and
# staticcheck (fetched through the module proxy at a pinned version).
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) mod tidy -diff
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Emulator on loopback + agent with simulated sensors; Ctrl-C to stop,
# or e.g. make demo DEMO_FLAGS=-duration=10s
demo: build
	./$(BIN) demo $(DEMO_FLAGS)

# Static binaries for every Raspberry Pi: armv6 (Zero/1, runs on all),
# armv7 (2/3), arm64 (3/4/5).
cross:
	GOOS=linux GOARCH=arm GOARM=6 $(BUILD) -o dist/sensor-agent-linux-armv6 ./cmd/sensor-agent
	GOOS=linux GOARCH=arm GOARM=7 $(BUILD) -o dist/sensor-agent-linux-armv7 ./cmd/sensor-agent
	GOOS=linux GOARCH=arm64 $(BUILD) -o dist/sensor-agent-linux-arm64 ./cmd/sensor-agent
	@ls -l dist/

# -cpu 1,2: a Pi Zero has one core, a Pi 4 four (the agent itself runs
# with GOMAXPROCS=1). Prints the benchmarks, then issue 11's figures with
# their targets (cmd/sensor-agent/internal/benchtable); bin/bench.txt
# keeps the raw output.
bench:
	@mkdir -p bin
	( $(GO) test -run '^$$' -bench . -benchmem -cpu 1,2 -timeout 60m ./... ; echo $$? > bin/bench.status ) | tee bin/bench.txt
	@exit $$(cat bin/bench.status)
	$(GO) run ./cmd/sensor-agent/internal/benchtable < bin/bench.txt

# Issue 11's side-by-side: the real binary, Telegraf (when installed at
# $(TELEGRAF)) and the article's approach against the emulator, measured
# from /proc; prints the Markdown table. make compare DURATION=20s
DURATION ?= 60s
TELEGRAF ?= $(shell $(GO) env GOPATH)/bin/telegraf
COMPARE_FLAGS ?=
compare: build
	$(GO) run ./cmd/sensor-agent/internal/compare -bin $(BIN) -duration $(DURATION) -telegraf '$(TELEGRAF)' $(COMPARE_FLAGS)

# The power-cut loop, longer than CI's 3 iterations (see README, Guarantees).
powercut:
	SENSOR_AGENT_POWERCUT=20 $(GO) test -count=1 -run PowerCut -v -timeout 30m ./cmd/sensor-agent

# Every fault of the Guarantees at once against the real binary (root:
# it mounts a loop ext4): kills, outages, redirects, 404s, stalls, a full,
# failing and deleted disk, a second instance, alias bombs, SIGHUPs; prints
# the ledger's table. CI runs it after make test.
torture:
	SENSOR_AGENT_TORTURE=1 $(GO) test -count=1 -run '^TestTorture$$' -v -timeout 30m ./cmd/sensor-agent

# Release drops in $(DIST): static binaries for armv6 (every Pi), armv7,
# arm64 and amd64, tarballs with the systemd files and install.sh, .deb
# packages (armhf for armv6, arm64, amd64) and SHA256SUMS; reproducible
# (systemd/packaging/dist.sh). `make deb` makes only the packages.
DIST ?= dist
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DIST_ENV = GO='$(GO)' VERSION='$(VERSION)' COMMIT='$(COMMIT)' DIST='$(DIST)' NFPM='$(NFPM)'

dist:
	$(DIST_ENV) sh systemd/packaging/dist.sh all

deb:
	$(DIST_ENV) sh systemd/packaging/dist.sh deb

# Builds the drops twice and checks them: identical bytes, sizes, the unit
# (systemd-analyze verify), the .debs (lintian, dpkg-deb), the tarballs,
# install.sh, and the arm binaries under qemu-user-static against the
# emulator (cmd/sensor-agent/dist_test.go). CI runs it as part of make test.
dist-check:
	SENSOR_AGENT_DIST=1 $(GO) test -count=1 -run '^TestDist$$' -v -timeout 20m ./cmd/sensor-agent

# Installs bin/sensor-agent as a systemd service (systemd/install.sh), with
# the man page, bash completion, LICENSE and third-party licences:
# make install [PREFIX=/usr/local] [DESTDIR=/tmp/stage]
PREFIX ?= /usr/local
install: build
	sh systemd/install.sh --bin $(BIN) --prefix $(PREFIX) $(if $(DESTDIR),--destdir $(DESTDIR))

# After changing go.mod: rewrite systemd/packaging/THIRD_PARTY_LICENSES
# from the module cache (TestThirdPartyLicenses checks it).
licenses:
	sh systemd/packaging/third-party-licenses.sh '$(GO)'

clean:
	rm -rf bin dist
