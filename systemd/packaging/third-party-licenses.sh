#!/bin/sh
# third-party-licenses.sh: writes systemd/packaging/THIRD_PARTY_LICENSES,
# the licences and notices of everything compiled into the binary: the Go
# standard library and every module `go version -m` lists, each copied
# verbatim from the module cache. Run it from the repository's root after
# changing go.mod; TestThirdPartyLicenses fails until it has been run.
#
#   sh systemd/packaging/third-party-licenses.sh [GO]
set -eu

GO=${1:-${GO:-go}}
out=systemd/packaging/THIRD_PARTY_LICENSES
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 "$GO" build -trimpath -o "$tmp/sensor-agent" ./cmd/sensor-agent

# section TITLE DIR: the licence and notice files of one component.
section() {
	printf '\n%s\n%s\n' "================================================================================" "$1"
	found=
	for f in "$2"/LICENSE* "$2"/LICENCE* "$2"/COPYING* "$2"/NOTICE* "$2"/PATENTS; do
		[ -f "$f" ] || continue
		found=1
		printf -- '-------------------------------------------------------------------------------- %s\n' "${f##*/}"
		cat "$f"
	done
	if [ -z "$found" ]; then
		echo "third-party-licenses.sh: no licence file in $2 ($1)" >&2
		exit 1
	fi
}

{
	cat <<'EOT'
Third-party software in sensor-agent

The sensor-agent binary is statically linked with the Go standard library and
runtime and with the Go modules below. Their licences and notices follow,
copied verbatim from each module (systemd/packaging/third-party-licenses.sh
writes this file; a test checks that it lists exactly the modules in the
binary). sensor-agent itself is under the Apache License 2.0 (LICENSE).
EOT
	section "Go standard library and runtime (https://go.dev)" "$("$GO" env GOROOT)"
	"$GO" version -m "$tmp/sensor-agent" | awk '$1 == "dep" { print $2, $3 }' | LC_ALL=C sort |
		while read -r mod ver; do
			dir=$("$GO" mod download -json "$mod@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
			section "$mod $ver" "$dir"
		done
} >"$out.new"
mv "$out.new" "$out"
echo "$out: $(grep -c '^================' "$out") components"
