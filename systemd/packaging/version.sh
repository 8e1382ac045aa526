#!/bin/sh
# version.sh: the one version string of a build, used by the Makefile
# (-X main.version, so `sensor-agent version` prints it), dist.sh (file
# names, the .deb version) and the dist test.
#
#   sh systemd/packaging/version.sh              the version, from git
#   sh systemd/packaging/version.sh --deb V      V as a Debian version
#
# From git: the nearest tag vX.Y.Z as `git describe` writes it:
#   v1.2.0                  on the tag
#   v1.2.0-3-gabc1234       3 commits after it
#   v1.2.0-3-gabc1234-dirty with uncommitted changes
# Untagged history: as if v0.0.0 were tagged before the first commit, so
# the count still grows along a branch: v0.0.0-79-g42dd848[-dirty].
# Not a git checkout: v0.0.0-unknown.
#
# The Debian version (a native package: no "-", must start with a digit,
# and sort in the order of the builds): the "v" dropped, a pre-release
# after "~" (sorts before the release), what git describe adds after "+"
# with dots:
#   v1.2.0                       1.2.0
#   v1.2.0-rc1                   1.2.0~rc1
#   v1.2.0-3-gabc1234-dirty      1.2.0+3.gabc1234.dirty
#   v1.2.0-rc1-3-gabc1234        1.2.0~rc1+3.gabc1234
#   v0.0.0-79-g42dd848           0.0.0+79.g42dd848
# Tarballs and binaries carry the version without its "v":
# sensor-agent_1.2.0-3-gabc1234_linux_armv6.tar.gz.
set -eu

describe() {
	if v=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
		echo "$v"
	elif n=$(git rev-list --count HEAD 2>/dev/null) && h=$(git describe --always --dirty 2>/dev/null); then
		echo "v0.0.0-$n-g$h"
	else
		echo "v0.0.0-unknown"
	fi
}

deb() {
	v=${1#v}
	extra=
	case $v in
	*-dirty) extra=dirty; v=${v%-dirty} ;;
	esac
	# -N-gHASH at the end: commits since the tag.
	if n=$(expr "$v" : '.*-\([0-9][0-9]*-g[0-9a-f][0-9a-f]*\)$'); then
		v=${v%-"$n"}
		extra=$(echo "$n" | tr - .)${extra:+.$extra}
	fi
	base=${v%%-*}
	pre=
	[ "$base" = "$v" ] || pre=${v#*-}
	case $base in
	[0-9]*) ;;
	*) base=0.0.0 pre= extra=$v${extra:+.$extra} ;;
	esac
	out=$base${pre:+~$pre}${extra:++$extra}
	# Only what a Debian version may hold.
	echo "$out" | sed 's/[^A-Za-z0-9.+~]/./g'
}

case ${1:-} in
"") describe ;;
--deb) deb "${2:?usage: version.sh --deb VERSION}" ;;
*) echo "usage: version.sh [--deb VERSION]" >&2; exit 2 ;;
esac
