#!/usr/bin/env bash
# The .deb as cargo-deb builds it from [package.metadata.deb]: lintian-clean
# (no E: or W:), the copyright file current with Cargo.lock, contents and
# fields inspected. As root, also: installed and run from /usr/bin; the
# sudoers example allows the privileged snippet's exact command line for user
# telegraf and nothing else; `dpkg -r` leaves a Telegraf (the real one,
# built by tests/telegraf-e2e.sh) that starts and runs its other inputs; a
# reinstall keeps the user's edits to the snippet; purge removes everything;
# the systemd drop-in example's capabilities give what it says they give.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
TELEGRAF=${VIGIL_CACHE:-$HOME/.cache/vigil}/telegraf-v1.34.4
CONF=/etc/telegraf/telegraf.d/vigil.conf

pass=0
ok() { pass=$((pass + 1)); }
fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "== $*"; }

# --- tools: cargo-deb (pinned, into ~/.cargo/bin), lintian, sudo ----------
export PATH="$HOME/.cargo/bin:$PATH"
if [[ "$(cargo deb --version 2>/dev/null || true)" != *"$CARGO_DEB_VERSION"* ]]; then
  log "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked -q
fi
need=()
command -v lintian >/dev/null 2>&1 || need+=(lintian)
[ "$(id -u)" = 0 ] && ! command -v sudo >/dev/null 2>&1 && need+=(sudo)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "install ${need[*]}"
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- the copyright file names what is linked today -----------------------
python3 packaging/copyright.py --check; ok

log "cargo deb"
deb=$(cargo deb --locked -q | tail -n 1)
[ -f "$deb" ] || fail "cargo deb printed no package path: $deb"
echo "$deb ($(stat -c %s "$deb") bytes)"

# --- lintian: no error, no warning at the default level -----------------
lint=$(lintian "$deb" 2>&1 | grep -v '^running with root privileges' || true)
echo "lintian: ${lint:-clean}"
if grep -E '^[EW]: ' <<<"$lint" >/dev/null; then fail "lintian errors or warnings"; fi; ok

# --- contents -------------------------------------------------------------
contents=$(dpkg-deb -c "$deb" | awk '{print $NF}')
metrics_doc=$(target/release/vigil --help | grep -o '/usr/share/doc/vigil/[A-Za-z0-9_.-]*' | head -n 1)
[ -n "$metrics_doc" ] || fail "vigil --help names no installed metrics reference"
for p in /usr/bin/vigil "$CONF" "$metrics_doc" \
         /usr/share/doc/vigil/copyright /usr/share/doc/vigil/changelog.gz \
         /usr/share/man/man1/vigil.1.gz /usr/share/man/man1/vigil-doctor.1.gz \
         /usr/share/man/man1/vigil-capture.1.gz \
         /usr/share/bash-completion/completions/vigil /usr/share/zsh/vendor-completions/_vigil \
         /usr/share/fish/vendor_completions.d/vigil.fish \
         /usr/share/vigil/grafana-dashboard.json /usr/share/vigil/grafana-alerts.yaml \
         /usr/share/vigil/queries.md /usr/share/vigil/vigil-privileged.conf \
         /usr/share/doc/vigil/examples/sudoers.vigil \
         /usr/share/doc/vigil/examples/telegraf.service.d/vigil.conf; do
  grep -x "\.$p" <<<"$contents" >/dev/null || fail "missing $p"; ok
done
if grep -E '^\./etc/(sudoers\.d|systemd)' <<<"$contents" >/dev/null; then
  fail "privilege must stay opt-in (examples only)"
fi; ok

# Every collector of the code's table is in the man page and the completions.
x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$deb" "$x"
for c in $(target/release/vigil --collectors '?' 2>&1 | sed -n 's/.*known: //p' | tr ',' ' '); do
  zgrep -w "$c" "$x/usr/share/man/man1/vigil.1.gz" >/dev/null || fail "man page lacks $c"
  for f in bash-completion/completions/vigil zsh/vendor-completions/_vigil fish/vendor_completions.d/vigil.fish; do
    grep -w "$c" "$x/usr/share/$f" >/dev/null || fail "$f lacks $c"
  done
done; ok

# --- fields ---------------------------------------------------------------
[ "$(dpkg-deb -f "$deb" Package)" = vigil ]; ok
# Computed by dpkg-shlibdeps from the binary: versioned, not written by hand.
dpkg-deb -f "$deb" Depends | grep -E '^libc6 \(>= [0-9.]+\)' >/dev/null || fail "Depends not computed"; ok
dpkg-deb -f "$deb" Recommends | grep -w telegraf >/dev/null; ok
if dpkg-deb -f "$deb" Depends | grep -w telegraf >/dev/null; then fail "telegraf must not be a hard dependency"; fi; ok
dpkg-deb -I "$deb" conffiles | grep -x "$CONF" >/dev/null; ok

if [ "$(id -u)" != 0 ]; then
  echo "deb: $pass passed, 0 failed (install steps need root, skipped)"
  exit 0
fi

# --- as root: install, run, privilege, remove, reinstall, purge ------------
[ -x "$TELEGRAF" ] || fail "$TELEGRAF missing: run tests/telegraf-e2e.sh first (it builds Telegraf)"
had=$(dpkg-query -W -f='${Status}' vigil 2>/dev/null || true)
created_user=
sudoers=/etc/sudoers.d/vigil-deb-test
cleanup() {
  rm -f "$sudoers"
  rm -rf "$x"
  if [ -z "$had" ]; then dpkg --purge vigil >/dev/null 2>&1 || true; fi
  if [ -n "$created_user" ]; then userdel telegraf 2>/dev/null || true; fi
}
trap cleanup EXIT

log "dpkg -i"
dpkg -i "$deb" >/dev/null
/usr/bin/vigil --once --collectors pcie_platform,vigil | grep "^vigil " >/dev/null; ok
/usr/bin/vigil doctor >/dev/null; ok
# The installed bash completion offers every collector after --collectors.
offered=$(bash -c 'source /usr/share/bash-completion/completions/vigil
  COMP_WORDS=(vigil --collectors ""); COMP_CWORD=2; _vigil vigil "" --collectors
  echo "${COMPREPLY[*]}"')
for c in $(/usr/bin/vigil --collectors '?' 2>&1 | sed -n 's/.*known: //p' | tr ',' ' '); do
  [[ " $offered " == *" $c "* ]] || fail "bash completion does not offer $c: $offered"
done; ok

log "sudoers example: the privileged snippet's command line, nothing else"
if ! getent passwd telegraf >/dev/null; then
  useradd --system --no-create-home --shell /usr/sbin/nologin telegraf
  created_user=1
fi
install -m 0440 telegraf-snippets/sudoers.vigil "$sudoers"
visudo -cqf "$sudoers"; ok
mapfile -t cmd < <(python3 -c '
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["inputs"]["execd"][0]["command"]))
' telegraf-snippets/vigil-privileged.conf)
[ "${cmd[0]}" = /usr/bin/sudo ] && [ "${cmd[1]}" = -n ] && [ "${cmd[2]}" = /usr/bin/vigil ] \
  || fail "privileged snippet does not run sudo -n /usr/bin/vigil: ${cmd[*]}"; ok
as_telegraf() { sudo -n -u telegraf -- "$@"; }
# Exactly what Telegraf runs: one newline on stdin, one batch, exit 0 on EOF.
out=$(echo | as_telegraf "${cmd[@]}") || fail "telegraf cannot run the privileged snippet's command"
grep '^vigil ' <<<"$out" >/dev/null || fail "no heartbeat from the privileged command"; ok
if ls /sys/bus/pci/devices/*/config >/dev/null 2>&1; then
  grep -E '^vigil .*privileged=1i' <<<"$out" >/dev/null || fail "vigil did not run privileged"; ok
fi
as_telegraf sudo -n -l "${cmd[@]:2}" >/dev/null || fail "sudo -l denies the snippet's command"; ok
for denied in "--root /tmp" "capture --out /tmp/x.tar.gz" "--once" "--no-names" "doctor"; do
  # shellcheck disable=SC2086  # word splitting wanted
  if as_telegraf sudo -n -l "${cmd[@]:2}" $denied >/dev/null 2>&1; then fail "sudo allows vigil $denied"; fi; ok
done
if as_telegraf sudo -n -l /bin/sh >/dev/null 2>&1; then fail "sudo allows /bin/sh"; fi; ok
# The documented recipe for flags (sudoers.vigil): same flags, commas escaped.
printf '%s\n' 'telegraf ALL=(root) NOPASSWD: /usr/bin/vigil --collectors pcie_aer_status\,vigil --no-names' > "$sudoers"
visudo -cqf "$sudoers"
as_telegraf sudo -n -l /usr/bin/vigil --collectors pcie_aer_status,vigil --no-names >/dev/null || fail "flag recipe denied"; ok
if as_telegraf sudo -n -l /usr/bin/vigil --collectors pcie_aer_status,vigil >/dev/null 2>&1; then fail "recipe allows fewer flags"; fi; ok
rm -f "$sudoers"

log "systemd drop-in example: its capabilities give what it says, as user telegraf"
dropin=telegraf-snippets/systemd/telegraf.service.d/vigil.conf
caps_of() { sed -n "s/^$1AmbientCapabilities=//p" "$dropin" | tr ' ' '\n' | sed 's/^CAP_//' | tr 'A-Z' 'a-z' | sed 's/^/+/' | paste -sd, -; }
as_telegraf_caps() {  # the way systemd starts Telegraf: user telegraf, ambient capabilities
  local c=$1; shift
  setpriv --reuid=telegraf --regid=telegraf --clear-groups ${c:+--inh-caps=$c --ambient-caps=$c} "$@"
}
on=$(caps_of '') off=$(caps_of '#')
[ "$on" = +syslog ] && [ "$off" = +sys_admin ] || fail "drop-in grants $on, offers $off"; ok
plain=$(as_telegraf_caps '' /usr/bin/vigil --once --collectors kernel_event,pcie_aer_status,vigil 2>/dev/null)
with_on=$(as_telegraf_caps "$on" /usr/bin/vigil --once --collectors kernel_event,vigil 2>/dev/null)
with_all=$(as_telegraf_caps "$on,$off" /usr/bin/vigil --once --collectors pcie_aer_status,pcie_device,vigil 2>/dev/null)
if [ -r /dev/kmsg ] && [ "$(sysctl -n kernel.dmesg_restrict 2>/dev/null)" = 1 ]; then
  grep 'collector=kernel_event .*unavailable="permission"' <<<"$plain" >/dev/null || fail "kmsg readable without CAP_SYSLOG?"; ok
  if grep 'collector=kernel_event .*unavailable=' <<<"$with_on" >/dev/null; then fail "CAP_SYSLOG does not open /dev/kmsg"; fi; ok
fi
if ls /sys/bus/pci/devices/*/config >/dev/null 2>&1; then
  grep 'collector=pcie_aer_status .*unavailable="permission"' <<<"$plain" >/dev/null || fail "config space readable unprivileged?"; ok
  grep -E '^vigil .*privileged=1i' <<<"$with_all" >/dev/null || fail "CAP_SYS_ADMIN does not give config space"; ok
  if grep 'collector=pcie_aer_status .*unavailable=' <<<"$with_all" >/dev/null; then fail "pcie_aer_status unavailable with CAP_SYS_ADMIN"; fi; ok
fi

log "dpkg -r: Telegraf still starts and runs its other inputs"
tg=$x/telegraf
mkdir -p "$tg"
cat > "$tg/telegraf.conf" <<TOML
[agent]
  interval = "1s"
  flush_interval = "1s"
  omit_hostname = true
[[inputs.execd]]
  command = ["/bin/sh", "-c", "while read -r _; do echo other_input value=1i; done"]
  signal = "STDIN"
  data_format = "influx"
[[outputs.file]]
  files = ["$tg/out.lp"]
  data_format = "influx"
TOML
# Telegraf as the Debian unit runs it (this file plus every *.conf in
# telegraf.d) until its output holds a line of each measurement named, then
# stopped. Fails if Telegraf exits first (it did not start) or after 30 s.
telegraf_run() {
  rm -f "$tg/out.lp"
  "$TELEGRAF" --config "$tg/telegraf.conf" --config-directory /etc/telegraf/telegraf.d \
    > "$tg/log" 2>&1 &
  local pid=$! deadline=$((SECONDS + 30)) m missing
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    missing=
    for m in "$@"; do grep "^$m " "$tg/out.lp" >/dev/null 2>&1 || missing=1; done
    if [ -z "$missing" ]; then kill "$pid"; wait "$pid" 2>/dev/null || true; return 0; fi
    sleep 0.2
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 1
}
echo "# local edit" >> "$CONF"
telegraf_run vigil other_input || { cat "$tg/log"; fail "telegraf with vigil installed"; }; ok
dpkg -r vigil >/dev/null
[ ! -e /usr/bin/vigil ] && [ ! -e "$CONF" ] && grep -x '# local edit' "$CONF.dpkg-remove" >/dev/null \
  || fail "remove: snippet not moved aside with the edit"; ok
telegraf_run other_input || { cat "$tg/log"; fail "telegraf does not start or its other input is silent after dpkg -r vigil"; }; ok
if grep -E '^vigil|/usr/bin/vigil' "$tg/out.lp" "$tg/log"; then fail "vigil traces after remove"; fi; ok
# Control: with the kept snippet in place, as before the fix, Telegraf does not start.
cp "$CONF.dpkg-remove" "$CONF"
if telegraf_run other_input; then fail "control: telegraf ran with a snippet naming a missing binary"; fi
grep 'failed to start process' "$tg/log" >/dev/null || { cat "$tg/log"; fail "control: other failure"; }; ok
rm -f "$CONF"

log "reinstall keeps the user's edit; purge removes the snippet"
dpkg -i "$deb" >/dev/null
grep -x '# local edit' "$CONF" >/dev/null || fail "reinstall lost the user's edit"; ok
[ ! -e "$CONF.dpkg-remove" ]; ok
telegraf_run vigil other_input || { cat "$tg/log"; fail "telegraf after reinstall"; }; ok
dpkg -r vigil >/dev/null
dpkg --purge vigil >/dev/null
[ ! -e "$CONF" ] && [ ! -e "$CONF.dpkg-remove" ] && [ ! -e /usr/bin/vigil ] || fail "purge left files"; ok
if [ -n "$had" ]; then dpkg -i "$deb" >/dev/null; fi
echo "deb: $pass passed, 0 failed"
