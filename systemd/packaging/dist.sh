#!/bin/sh
# Release drops: `make dist` (everything) and `make deb` (the packages) run
# this from the repository's root. It writes to $DIST (default dist/):
#
#   sensor-agent_<version>_linux_<arch>          static binaries: armv6 (every
#                                                Pi, Zero included), armv7,
#                                                arm64, amd64
#   sensor-agent_<version>_linux_<arch>.tar.gz   binary, unit, sysusers.d and
#                                                tmpfiles.d files, example
#                                                config, README, install.sh,
#                                                LICENSE, THIRD_PARTY_LICENSES,
#                                                man page, bash completion
#   sensor-agent_<debversion>_<debarch>.deb      armhf (built for armv6, so it
#                                                runs on a Pi Zero), arm64, amd64
#   SHA256SUMS
#
# Reproducible: the same source (and Go toolchain) gives the same bytes.
# Binaries: CGO_ENABLED=0, -trimpath, -buildvcs=false, an empty build id,
# version and commit from git. Archives: sorted names, owner 0, modes set
# here, every mtime the commit's time ($SOURCE_DATE_EPOCH, which nfpm
# honours too), gzip without name or time.
#
# Environment (the Makefile sets them): GO, VERSION, COMMIT, DIST, NFPM,
# SOURCE_DATE_EPOCH (default: the commit time of HEAD).
set -eu

cmd=${1:-all}
GO=${GO:-go}
DIST=${DIST:-dist}
NFPM=${NFPM:-$GO run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2}
VERSION=${VERSION:-$(sh systemd/packaging/version.sh)}
COMMIT=${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) || {
		echo "dist.sh: not a git checkout: set SOURCE_DATE_EPOCH (and VERSION, COMMIT)" >&2
		exit 1
	}
fi
export SOURCE_DATE_EPOCH

# The version in file names: the version without its "v"; the .deb's: its
# Debian form (systemd/packaging/version.sh says how).
version=${VERSION#v}
debversion=$(sh systemd/packaging/version.sh --deb "$VERSION")

stage=$DIST/.stage
mkdir -p "$DIST" "$stage"

# The bash completion script, from the source's commands (a host build).
completion() {
	[ -f "$stage/sensor-agent.bash" ] ||
		CGO_ENABLED=0 "$GO" run -trimpath ./cmd/sensor-agent completion bash >"$stage/sensor-agent.bash"
	chmod 0644 "$stage/sensor-agent.bash"
}

# build ARCH: the static binary for one target.
build() {
	case $1 in
	armv6) env="GOARCH=arm GOARM=6" ;;
	armv7) env="GOARCH=arm GOARM=7" ;;
	arm64) env="GOARCH=arm64" ;;
	amd64) env="GOARCH=amd64 GOAMD64=v1" ;;
	*) echo "dist.sh: unknown arch $1" >&2; exit 2 ;;
	esac
	out=$DIST/sensor-agent_${version}_linux_$1
	# shellcheck disable=SC2086 # $env is a list of assignments
	env CGO_ENABLED=0 GOOS=linux $env "$GO" build -trimpath -buildvcs=false \
		-ldflags "-s -w -buildid= -X main.version=$VERSION -X main.commit=$COMMIT" \
		-o "$out" ./cmd/sensor-agent
	chmod 0755 "$out"
	echo "$out: $(wc -c <"$out") bytes"
}

# tarball ARCH: the binary with everything to install it.
tarball() {
	name=sensor-agent_${version}_linux_$1
	dir=$stage/$name
	rm -rf "$dir"
	mkdir -p "$dir/systemd" "$dir/configs"
	install -m 0755 "$DIST/$name" "$dir/sensor-agent"
	install -m 0755 systemd/install.sh "$dir/install.sh"
	install -m 0644 README.md "$dir/README.md"
	install -m 0644 LICENSE "$dir/LICENSE"
	install -m 0644 systemd/packaging/THIRD_PARTY_LICENSES "$dir/THIRD_PARTY_LICENSES"
	install -m 0644 systemd/packaging/sensor-agent.1 "$dir/systemd/sensor-agent.1"
	completion
	install -m 0644 "$stage/sensor-agent.bash" "$dir/systemd/sensor-agent.bash"
	install -m 0644 configs/example.yaml "$dir/configs/example.yaml"
	for f in sensor-agent.service sensor-agent.sysusers sensor-agent.tmpfiles; do
		install -m 0644 "systemd/$f" "$dir/systemd/$f"
	done
	chmod 0755 "$dir" "$dir/systemd" "$dir/configs"
	tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner \
		--mtime="@$SOURCE_DATE_EPOCH" -C "$stage" -cf - "$name" |
		gzip -9 -n >"$DIST/$name.tar.gz"
	rm -rf "$dir"
	echo "$DIST/$name.tar.gz"
}

# deb ARCH: the package, with nfpm (systemd/packaging/nfpm.yaml).
deb() {
	case $1 in
	armv6) nfpmarch=arm6 debarch=armhf ;;
	arm64) nfpmarch=arm64 debarch=arm64 ;;
	amd64) nfpmarch=amd64 debarch=amd64 ;;
	esac
	# nfpm takes file modes from the files: give them the package's.
	cp systemd/packaging/copyright "$stage/copyright"
	gzip -9 -n <README.md >"$stage/README.md.gz"
	gzip -9 -n <systemd/packaging/sensor-agent.1 >"$stage/sensor-agent.1.gz"
	completion
	# A native package's changelog: one entry for this build.
	{
		printf 'sensor-agent (%s) unstable; urgency=medium\n\n' "$debversion"
		printf '  * Build of %s (commit %s); see README.md.gz.\n\n' "$VERSION" "$COMMIT"
		printf ' -- %s  %s\n' "sensor-agent maintainers <sensor-agent@users.noreply.github.com>" \
			"$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
	} | gzip -9 -n >"$stage/changelog.gz"
	chmod 0644 "$stage/copyright" "$stage/README.md.gz" "$stage/changelog.gz" "$stage/sensor-agent.1.gz"
	out=$DIST/sensor-agent_${debversion}_$debarch.deb
	rm -f "$out"
	NFPM_ARCH=$nfpmarch NFPM_VERSION=$debversion NFPM_BIN=$DIST/sensor-agent_${version}_linux_$1 \
		NFPM_STAGE=$stage $NFPM pkg --config systemd/packaging/nfpm.yaml --packager deb --target "$out" >/dev/null
	echo "$out"
}

sums() {
	(cd "$DIST" && rm -f SHA256SUMS && find . -maxdepth 1 -type f -name 'sensor-agent_*' | sed 's|^\./||' |
		LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
	echo "$DIST/SHA256SUMS"
}

case $cmd in
all)
	rm -f "$DIST"/sensor-agent_* "$DIST/SHA256SUMS"
	for a in armv6 armv7 arm64 amd64; do build $a; done
	for a in armv6 armv7 arm64 amd64; do tarball $a; done
	for a in armv6 arm64 amd64; do deb $a; done
	sums
	;;
bin)
	for a in armv6 armv7 arm64 amd64; do build $a; done
	;;
deb)
	rm -f "$DIST"/sensor-agent_*.deb
	for a in armv6 arm64 amd64; do build $a; done
	for a in armv6 arm64 amd64; do deb $a; done
	;;
*)
	echo "usage: dist.sh all|bin|deb" >&2
	exit 2
	;;
esac
rm -rf "$stage"
