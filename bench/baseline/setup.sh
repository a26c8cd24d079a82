#!/usr/bin/env bash
# Sets up the comparison stack of the benchmarks ("Node.js ws gateway +
# InfluxDB"): installs Debian's influxdb package when missing (apt, sudo when
# not root) without leaving its system service running or enabled, and the
# gateway's npm dependencies (bench/baseline/node_modules, from
# package-lock.json). influxd is then started per run by influx.sh.
set -euo pipefail
cd "$(dirname "$0")"

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)

missing=()
for p in influxdb curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere (nodesource's nodejs bundles npm, and
# conflicts with Debian's npm): only commands that are missing are installed.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

if ((${#missing[@]})); then
  echo "baseline setup: installing ${missing[*]}"
  # The influxdb package starts (and enables) influxdb.service from its
  # postinst. A policy-rc.d that answers 101 ("action not allowed") keeps
  # invoke-rc.d and deb-systemd-invoke from starting it; one already in place
  # (as in containers) is left alone, ours is removed afterwards.
  own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# pulse bench/baseline/setup.sh: no service starts during apt-get install\nexit 101\n' |
      "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo_cmd[@]}" chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  remove_policy() { ((own_policy)) && "${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d || true; }
  trap remove_policy EXIT
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  remove_policy
  trap - EXIT
fi

# Whatever installed it, the system service must neither run nor start at
# boot: the benchmarks start their own influxd on a loopback port.
if [[ -d /run/systemd/system ]]; then
  "${sudo_cmd[@]}" systemctl disable --now influxdb.service >/dev/null 2>&1 || true
else
  if [[ -x /etc/init.d/influxdb ]]; then
    "${sudo_cmd[@]}" /etc/init.d/influxdb stop >/dev/null 2>&1 || true
  fi
  if command -v update-rc.d >/dev/null && [[ -e /etc/init.d/influxdb ]]; then
    "${sudo_cmd[@]}" update-rc.d influxdb disable >/dev/null 2>&1 || true
  fi
  # The unit's enablement links, for a later boot with systemd.
  if command -v deb-systemd-helper >/dev/null; then
    "${sudo_cmd[@]}" deb-systemd-helper disable influxdb.service >/dev/null 2>&1 || true
  fi
fi
# A system influxd still running (started before this script) is reported,
# not killed: it may be somebody's.
if pgrep -x -u influxdb influxd >/dev/null 2>&1; then
  echo "baseline setup: warning: a system influxd (user influxdb) is running" >&2
fi

command -v influxd >/dev/null || { echo "baseline setup: influxd not found after install" >&2; exit 1; }

# The gateway's dependencies (ws, bufferutil), as package-lock.json pins them.
npm install --no-audit --no-fund --loglevel=error
echo "baseline setup: $(influxd version 2>/dev/null | head -n1), node $(node --version), ws $(node -p 'require("ws/package.json").version')"
