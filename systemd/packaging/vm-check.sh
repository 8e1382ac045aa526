#!/bin/sh
# vm-check.sh DEB: the unit under a real systemd. Boots Debian bookworm
# (systemd 252, as on Raspberry Pi OS bookworm) under QEMU with the amd64
# .deb installed, the emulator as a second service and a sim sensor, and
# checks: Type=notify readiness and STATUS=, the user, groups and
# hardening of the running process, `systemctl reload` with a broken and
# with a good config (same PID, new sensors), `systemctl stop` time, and
# the watchdog restarting a frozen (SIGSTOPped) agent, `sensor-agent
# status` as root, as the service user and as a user outside its group,
# and journald priorities (`journalctl -p err` shows the agent's error
# lines and no others). Prints the journal.
#
# Not part of CI (it debootstraps from a Debian mirror and boots a VM: a
# few minutes). Needs root, debootstrap, qemu-system-x86, e2fsprogs and
# linux-image-amd64 (/boot/vmlinuz-* with its initrd.img-*):
#   make deb && sudo sh systemd/packaging/vm-check.sh dist/sensor-agent_*_amd64.deb
# The root tree is cached in $VMCHECK_ROOT (default /var/tmp/sensor-agent-vmroot).
set -eu

deb=$(realpath "${1:?usage: vm-check.sh sensor-agent_VERSION_amd64.deb}")
root=${VMCHECK_ROOT:-/var/tmp/sensor-agent-vmroot}
mirror=${VMCHECK_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/sensor-agent-vmcheck.XXXXXX)
kernel=$(find /boot -maxdepth 1 -name "vmlinuz-*" | sort -V | tail -1)
initrd=/boot/initrd.img-${kernel#/boot/vmlinuz-}

if [ ! -x "$root/usr/bin/apt-get" ]; then
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates bookworm "$root" "$mirror"
fi
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"$root/etc/hosts"
echo vm >"$root/etc/hostname"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/sensor-agent.deb"
chroot "$root" sh -c 'apt-get -qq update && apt-get -y -qq install /tmp/sensor-agent.deb' >/dev/null
rm "$root/tmp/sensor-agent.deb"

# The emulator's throwaway certificates, readable by the agent's group.
rm -rf "$root/etc/sensor-agent/emu"
mkdir -p "$root/etc/sensor-agent/emu"
chroot "$root" sh -c 'sensor-agent emulate -dir /etc/sensor-agent/emu -alpn-listen 127.0.0.1:0 -plain-listen off & sleep 3; kill $!' >/dev/null 2>&1
cat >"$root/etc/sensor-agent/config.yaml" <<'EOF'
device_id: vm-pi
endpoint:
  host: localhost
  port: 4443
  alpn: on
  cert_file: /etc/sensor-agent/emu/device.pem.crt
  key_file: /etc/sensor-agent/emu/private.pem.key
  ca_file: /etc/sensor-agent/emu/ca.pem
publish:
  flush_interval: 2s
sensors:
  - name: greenhouse
    driver: sim
    interval: 1s
    values: [temperature_c, humidity_pct, pressure_hpa]
EOF
chroot "$root" sh -c 'chgrp -R sensor-agent /etc/sensor-agent && chmod 0640 /etc/sensor-agent/config.yaml /etc/sensor-agent/emu/* && chmod 0750 /etc/sensor-agent/emu'

cat >"$root/etc/systemd/system/emu.service" <<'EOF'
[Unit]
Description=AWS IoT emulator (vm-check)
Before=sensor-agent.service
[Service]
ExecStart=/usr/bin/sensor-agent emulate -dir /etc/sensor-agent/emu -record /root/emu.jsonl -plain-listen off
[Install]
WantedBy=multi-user.target
EOF
cat >"$root/usr/local/bin/vmcheck" <<'EOF'
#!/bin/sh
say() { echo "VMCHECK: $*"; }
fail() { echo "VMCHECK FAIL: $*"; }
prop() { systemctl show -p "$1" --value sensor-agent; }
show() { systemctl show sensor-agent -p ActiveState -p SubState -p Result -p NRestarts -p MainPID -p StatusText | tr '\n' ' '; }
for i in $(seq 90); do [ "$(prop ActiveState)" = active ] && break; sleep 1; done
say "started: $(show)"
[ "$(prop SubState)" = running ] || fail "not running after boot"
sleep 22
say "after 22s: $(show)"
prop StatusText | grep -Eq '^readings taken [1-9][0-9]*, published [1-9][0-9]*, pending [0-9]+; last publish [0-9:]+Z ok$' || fail "STATUS: $(prop StatusText)"
systemctl status sensor-agent --no-pager -l | sed 's/^/VMCHECK status: /'
out=$(sensor-agent status); rc=$?
echo "$out" | sed 's/^/VMCHECK status (root): /'
[ "$rc" = 0 ] || fail "status as root: exit $rc, want 0"
echo "$out" | grep -q '^sensor-agent .*: healthy, up ' || fail "status: not healthy"
echo "$out" | grep -Eq '^greenhouse +sim +1s +ok +0 .*temperature [0-9.]+ °C' || fail "status: no greenhouse row"
runuser -u sensor-agent -- sensor-agent status >/dev/null || fail "status as user sensor-agent: exit $?"
out=$(runuser -u nobody -- sensor-agent status 2>&1); rc=$?
[ "$rc" = 1 ] && echo "$out" | grep -q 'permission denied: run as root or as a member of group sensor-agent' || fail "status as nobody: exit $rc: $out"
[ "$(stat -c '%a %U %G' /run/sensor-agent)" = "750 sensor-agent sensor-agent" ] || fail "runtime dir $(stat -c '%a %U %G' /run/sensor-agent)"
[ "$(stat -c '%a %U %G' /run/sensor-agent/agent.sock)" = "660 sensor-agent sensor-agent" ] || fail "socket $(stat -c '%a %U %G' /run/sensor-agent/agent.sock)"
pid=$(prop MainPID)
grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$pid/status || fail "NoNewPrivs"
grep -q '^CapEff:[[:space:]]*0*$' /proc/$pid/status || fail "capabilities"
grep -q '^Seccomp:[[:space:]]*2' /proc/$pid/status || fail "seccomp"
[ "$(stat -c %U /proc/$pid)" = sensor-agent ] || fail "user $(stat -c %U /proc/$pid)"
for g in i2c gpio; do
	grep -q "^Groups:.*\b$(getent group $g | cut -d: -f3)\b" /proc/$pid/status || fail "not in group $g"
done
cp /etc/sensor-agent/config.yaml /root/good.yaml
echo "bogus: 1" >>/etc/sensor-agent/config.yaml
systemctl reload sensor-agent || fail "reload (broken config) failed"
sleep 2
say "after a broken reload: $(show)"
prop StatusText | grep -q '^reload failed' || fail "STATUS after a broken reload: $(prop StatusText)"
# The broken reload is logged at level ERROR: priority 3 in the journal.
journalctl -u sensor-agent -p err -o cat | sed 's/^/VMCHECK journal -p err: /'
journalctl -u sensor-agent -p err -o cat | grep -q '^level=ERROR msg="reload: the config does not load' || fail "journalctl -p err lacks the reload error"
journalctl -u sensor-agent -p err -o cat | grep -q '^level=\(INFO\|WARN\|DEBUG\)' && fail "journalctl -p err shows lines below error"
journalctl -u sensor-agent -p info -o cat | grep -q '^level=INFO msg="sensor-agent started"' || fail "no info line at priority info"
journalctl -u sensor-agent -o cat | grep -q '^<[0-9]>' && fail "the journal kept the priority prefix: level_prefix off?"
cp /root/good.yaml /etc/sensor-agent/config.yaml
printf '  - name: door\n    driver: sim\n    interval: 2s\n    waveform: square\n    values: [level]\n' >>/etc/sensor-agent/config.yaml
systemctl reload sensor-agent || fail "reload failed"
sleep 3
say "after a reload: $(show)"
[ "$(prop MainPID)" = "$pid" ] || fail "reload changed the PID"
journalctl -u sensor-agent -o cat | grep -q 'msg="config reloaded".*sensors=2' || fail "no 'config reloaded' with 2 sensors"
t0=$(date +%s%N); systemctl stop sensor-agent; ms=$(( ($(date +%s%N) - t0) / 1000000 ))
say "stop took $ms ms: $(show)"
[ "$(prop Result)" = success ] || fail "stop result $(prop Result)"
[ "$ms" -lt 20000 ] || fail "stop took $ms ms"
out=$(sensor-agent status 2>&1); rc=$?
[ "$rc" = 3 ] && echo "$out" | grep -q 'sensor-agent is not running: no agent answers on /run/sensor-agent/agent.sock' || fail "status after stop: exit $rc: $out"
mkdir -p /run/systemd/system/sensor-agent.service.d
printf '[Service]\nWatchdogSec=4s\n' >/run/systemd/system/sensor-agent.service.d/wd.conf
systemctl daemon-reload
systemctl start sensor-agent
sleep 3
kill -STOP "$(prop MainPID)"
say "SIGSTOP sent to the agent, WatchdogSec=4s"
sleep 20
say "20s later: $(show)"
[ "$(prop NRestarts)" = 1 ] && [ "$(prop ActiveState)" = active ] || fail "the watchdog did not restart the frozen agent"
journalctl -u sensor-agent -o cat | grep -q 'Watchdog timeout' || fail "no watchdog timeout in the journal"
rm -r /run/systemd/system/sensor-agent.service.d
systemctl daemon-reload
say "messages at the emulator: $(wc -l </root/emu.jsonl)"
# The journal without the goroutine dump of the SIGABRT (the watchdog's).
journalctl -u sensor-agent --no-pager | grep -E 'systemd\[1\]|sensor-agent\[[0-9]+\]: (level=|SIGABRT)' | sed 's/^/VMCHECK journal: /'
systemd-analyze security sensor-agent --no-pager | tail -1 | sed 's/^/VMCHECK: /'
say done
systemctl poweroff
EOF
chmod 0755 "$root/usr/local/bin/vmcheck"
cat >"$root/etc/systemd/system/vmcheck.service" <<'EOF'
[Unit]
Description=sensor-agent vm-check
After=sensor-agent.service emu.service
[Service]
Type=oneshot
ExecStart=/usr/local/bin/vmcheck
StandardOutput=journal+console
StandardError=journal+console
[Install]
WantedBy=multi-user.target
EOF
chroot "$root" systemctl enable emu.service vmcheck.service >/dev/null 2>&1
rm -f "$root/root/emu.jsonl"
chroot "$root" sh -c 'rm -rf /var/lib/sensor-agent/* /var/log/journal/*'

mke2fs -q -t ext4 -d "$root" "$work/disk.img" 1G
echo "vm-check: booting $kernel under QEMU (TCG); console in $work/console.log"
timeout 900 qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -kernel "$kernel" -initrd "$initrd" \
	-append "root=/dev/vda rw console=ttyS0 systemd.show_status=0" \
	-drive "file=$work/disk.img,format=raw,if=virtio" -nic none -display none \
	-serial "file:$work/console.log" -no-reboot
grep -a 'VMCHECK' "$work/console.log" | sed 's/^\[[ 0-9.]*\] vmcheck\[[0-9]*\]: //'
if ! grep -aq 'VMCHECK: done' "$work/console.log"; then
	echo "vm-check: FAILED: the check did not finish (see $work/console.log)"
	exit 1
fi
if grep -aq 'VMCHECK FAIL' "$work/console.log"; then
	echo "vm-check: FAILED (see $work/console.log)"
	exit 1
fi
rm -rf "$work"
echo "vm-check: PASS"
