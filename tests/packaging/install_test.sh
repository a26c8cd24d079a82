#!/usr/bin/env bash
# Packaging test: installs into a staging root (DESTDIR), checks the layout,
# runs the installed pulse-node with the installed config and the systemd
# unit's own arguments (paths moved into the staging root), then builds the
# .deb with CPack and checks its contents. Without dpkg-deb the .deb part is
# skipped, saying so. Usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
stage=$(mktemp -d /tmp/pulse-install-test.XXXXXX)
node_pid=
cleanup() {
  [[ -n $node_pid ]] && kill -9 "$node_pid" 2>/dev/null || true
  rm -rf "$stage"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

DESTDIR=$stage/root cmake --install "$build" --prefix /usr >"$stage/install.log" 2>&1 ||
  { cat "$stage/install.log"; fail "cmake --install failed"; }
root=$stage/root
for f in usr/bin/pulse-node usr/bin/pulse-sim etc/pulse/pulse-node.ini etc/pulse/tokens.example \
         lib/systemd/system/pulse-node.service usr/share/doc/pulse/LICENSE \
         usr/share/doc/pulse/configuration.md usr/share/pulse/pulse-sim.ini; do
  [[ -e $root/$f ]] || fail "$f not installed"
done
"$root/usr/bin/pulse-node" --version | grep -q '^pulse-node ' || fail "installed pulse-node --version"

# The unit's ExecStart, with its paths moved into the staging root.
unit=$root/lib/systemd/system/pulse-node.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ -n $exec_start ]] || fail "no ExecStart in the unit"
grep -q '^StateDirectory=pulse$' "$unit" || fail "the unit has no StateDirectory"
grep -q '^LimitNOFILE=' "$unit" || fail "the unit has no LimitNOFILE"
grep -q '^User=pulse$' "$unit" || fail "the unit runs as no user of its own"
mkdir -p "$stage/state"
cmd=${exec_start//\/usr\/bin\//$root/usr/bin/}
cmd=${cmd//\/etc\/pulse\//$root/etc/pulse/}
cmd=${cmd//\/var\/lib\/pulse/$stage/state}
echo "running: $cmd --net.port=0"
# shellcheck disable=SC2086
$cmd --net.port=0 >"$stage/node.out" 2>"$stage/node.err" &
node_pid=$!
for _ in $(seq 300); do
  grep -q "listening on" "$stage/node.out" 2>/dev/null && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$stage/node.err"; fail "installed pulse-node exited"; }
  sleep 0.1
done
line=$(grep "listening on" "$stage/node.out") || { cat "$stage/node.err"; fail "no start-up line"; }
echo "$line"
port=${line##*:}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
answer=$(timeout 10 cat <&3) || true
exec 3<&-
[[ $answer == *'"status":"ok"'* ]] || fail "/healthz of the installed node: $answer"
[[ -n $(ls -A "$stage/state") ]] || fail "nothing written in the state directory"
kill -TERM "$node_pid"
rc=0
wait "$node_pid" || rc=$?
node_pid=
[[ $rc == 0 ]] || fail "installed pulse-node exited $rc on SIGTERM"

if command -v systemd-analyze >/dev/null; then
  # Checks the unit's syntax; the binary it names is not installed here, so
  # only that complaint is allowed.
  out=$(systemd-analyze verify "$unit" 2>&1 || true)
  bad=$(grep -v -e 'pulse-node' -e '^$' <<<"$out" || true)
  [[ -z $bad ]] || fail "systemd-analyze verify: $out"
else
  echo "skipped: systemd-analyze verify (no systemd-analyze)"
fi

if ! command -v dpkg-deb >/dev/null; then
  echo "skipped: the .deb (no dpkg-deb on this machine)"
  exit 0
fi
(cd "$stage" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$stage/deb" >"$stage/cpack.log" 2>&1) ||
  { cat "$stage/cpack.log"; fail "cpack -G DEB failed"; }
deb=$(ls "$stage"/deb/pulse_*.deb) || fail "no .deb built"
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/pulse-node ./usr/bin/pulse-sim ./etc/pulse/pulse-node.ini ./lib/systemd/system/pulse-node.service; do
  grep -q " $f\$" <<<"$contents" || fail "$f not in $(basename "$deb")"
done
control=$(dpkg-deb --field "$deb" Package Version Depends)
echo "$control"
grep -q '^Depends:.*adduser' <<<"$control" || fail "the .deb does not depend on adduser"
dpkg-deb --ctrl-tarfile "$deb" | tar -t | grep -q conffiles || fail "no conffiles in the .deb"
mkdir -p "$stage/x" && dpkg-deb -x "$deb" "$stage/x"
"$stage/x/usr/bin/pulse-node" --version | grep -q '^pulse-node ' || fail "pulse-node from the .deb"
echo "ok: installed, ran, packaged $(basename "$deb")"
