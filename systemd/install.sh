#!/bin/sh
# install.sh: install sensor-agent as a systemd service on a system without
# dpkg (or without the .deb). In a release tarball it sits next to the
# binary; in the source tree `make install` runs it.
#
#   sudo ./install.sh                  install (or upgrade), enable; start if
#                                      /etc/sensor-agent/config.yaml exists
#   sudo ./install.sh --uninstall      stop, disable, remove what it installed
#                                      (not the config, certificates or spool)
#
# Options: --prefix DIR (default /usr/local: the binary goes to DIR/bin),
# --bin FILE (the binary; default: ./sensor-agent next to this script),
# --destdir DIR (stage into DIR, e.g. for an image build: nothing is run).
#
# Installs: PREFIX/bin/sensor-agent, /etc/systemd/system/sensor-agent.service
# (ExecStart pointing at PREFIX/bin), /etc/sysusers.d/sensor-agent.conf,
# /etc/tmpfiles.d/sensor-agent.conf, /etc/sensor-agent/config.yaml.example,
# PREFIX/share/doc/sensor-agent/{README.md,LICENSE,THIRD_PARTY_LICENSES},
# the man page PREFIX/share/man/man1/sensor-agent.1 and the bash completion
# PREFIX/share/bash-completion/completions/sensor-agent. Then runs systemd-sysusers (user
# sensor-agent in groups i2c and gpio), systemd-tmpfiles --create,
# systemctl daemon-reload and enable.
set -eu

prefix=/usr/local
bin=
destdir=
uninstall=false
while [ $# -gt 0 ]; do
	case $1 in
	--prefix) prefix=$2; shift 2 ;;
	--prefix=*) prefix=${1#*=}; shift ;;
	--bin) bin=$2; shift 2 ;;
	--bin=*) bin=${1#*=}; shift ;;
	--destdir) destdir=$2; shift 2 ;;
	--destdir=*) destdir=${1#*=}; shift ;;
	--uninstall) uninstall=true; shift ;;
	-h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "install.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
done

here=$(cd "$(dirname "$0")" && pwd)
# The tarball has systemd/ and configs/ next to this script; the source
# tree has this script in systemd/.
if [ -f "$here/systemd/sensor-agent.service" ]; then
	top=$here
else
	top=$(cd "$here/.." && pwd)
fi
[ -n "$bin" ] || bin=$top/sensor-agent

unit=$destdir/etc/systemd/system/sensor-agent.service
sysusers=$destdir/etc/sysusers.d/sensor-agent.conf
tmpfiles=$destdir/etc/tmpfiles.d/sensor-agent.conf
target=$prefix/bin/sensor-agent
doc=$destdir$prefix/share/doc/sensor-agent
man=$destdir$prefix/share/man/man1/sensor-agent.1
completion=$destdir$prefix/share/bash-completion/completions/sensor-agent
# Where the tarball has the man page, the completion script and the
# third-party licences; the source tree has them in systemd/packaging (the
# completion is asked of the binary).
src_man=$top/systemd/sensor-agent.1
src_completion=$top/systemd/sensor-agent.bash
src_licenses=$top/THIRD_PARTY_LICENSES
if [ ! -f "$src_man" ]; then
	src_man=$top/systemd/packaging/sensor-agent.1
	src_completion=
	src_licenses=$top/systemd/packaging/THIRD_PARTY_LICENSES
fi

live() { [ -z "$destdir" ]; }

if live && [ "$(id -u)" != 0 ]; then
	echo "install.sh: run it as root (sudo $0)" >&2
	exit 1
fi
if live && [ ! -d /run/systemd/system ]; then
	echo "install.sh: systemd is not running here: files are installed, nothing is started" >&2
fi
systemd_up() { live && [ -d /run/systemd/system ]; }

if $uninstall; then
	if systemd_up; then
		systemctl disable --now sensor-agent.service || true
	fi
	rm -f "$destdir$target" "$unit" "$sysusers" "$tmpfiles" "$destdir/etc/sensor-agent/config.yaml.example" "$man" "$completion"
	rm -rf "$doc"
	if systemd_up; then
		systemctl daemon-reload
	fi
	echo "sensor-agent removed. Left: /etc/sensor-agent (config, certificates), /var/lib/sensor-agent (spool), the user sensor-agent."
	exit 0
fi

if [ ! -f "$bin" ]; then
	echo "install.sh: no binary at $bin (use --bin FILE)" >&2
	exit 1
fi

install -d -m 0755 "$destdir$prefix/bin" "$destdir/etc/systemd/system" "$destdir/etc/sysusers.d" "$destdir/etc/tmpfiles.d" "$doc" \
	"${man%/*}" "${completion%/*}"
# Replace, not overwrite in place: the running binary stays intact.
install -m 0755 "$bin" "$destdir$target.new"
mv -f "$destdir$target.new" "$destdir$target"
sed "s|^ExecStart=/usr/bin/sensor-agent |ExecStart=$target |" "$top/systemd/sensor-agent.service" >"$unit.new"
chmod 0644 "$unit.new"
mv -f "$unit.new" "$unit"
install -m 0644 "$top/systemd/sensor-agent.sysusers" "$sysusers"
install -m 0644 "$top/systemd/sensor-agent.tmpfiles" "$tmpfiles"
install -m 0644 "$top/README.md" "$doc/README.md"
install -m 0644 "$top/LICENSE" "$doc/LICENSE"
install -m 0644 "$src_licenses" "$doc/THIRD_PARTY_LICENSES"
install -m 0644 "$src_man" "$man"
if [ -n "$src_completion" ]; then
	install -m 0644 "$src_completion" "$completion"
elif "$bin" completion bash >"$completion.new" 2>/dev/null; then
	chmod 0644 "$completion.new"
	mv -f "$completion.new" "$completion"
else # a binary for another machine, staged into --destdir
	rm -f "$completion.new"
	echo "install.sh: $bin does not run here: no bash completion installed (sensor-agent completion bash prints it)" >&2
fi

if live; then
	systemd-sysusers "$sysusers"
	systemd-tmpfiles --create "$tmpfiles"
	install -m 0640 -g sensor-agent "$top/configs/example.yaml" /etc/sensor-agent/config.yaml.example
else
	install -d -m 0750 "$destdir/etc/sensor-agent"
	install -m 0640 "$top/configs/example.yaml" "$destdir/etc/sensor-agent/config.yaml.example"
fi

if systemd_up; then
	systemctl daemon-reload
	systemctl enable sensor-agent.service
	# Start, or restart an upgraded one; skipped by the unit's
	# ConditionPathExists= until the config exists.
	systemctl restart sensor-agent.service
elif live; then
	systemctl enable sensor-agent.service
fi

echo "$("$destdir$target" version 2>/dev/null || echo sensor-agent) installed to $destdir$target"
if [ ! -e "$destdir/etc/sensor-agent/config.yaml" ]; then
	cat <<EOT
Next: write /etc/sensor-agent/config.yaml (start from config.yaml.example
there), put the device certificate and key next to it (readable by group
sensor-agent), check it, and start the service:
  sudo -u sensor-agent $target check
  sudo systemctl start sensor-agent
  journalctl -u sensor-agent -f
EOT
fi
