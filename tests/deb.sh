#!/usr/bin/env bash
# The .deb: contents and fields inspected, installed with dpkg -i, run from the
# installed path, a local edit of the conffile kept across reinstall, removed.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(bash packaging/build-deb.sh)
echo "== $deb"
pass=0
ok() { pass=$((pass + 1)); }
contents=$(dpkg-deb -c "$deb")
for p in ./usr/bin/vigil ./etc/telegraf/telegraf.d/vigil.conf ./usr/share/vigil/grafana-dashboard.json \
         ./usr/share/vigil/grafana-alerts.yaml ./usr/share/vigil/queries.md \
         ./usr/share/doc/vigil/examples/sudoers.vigil; do
  grep -q " $p\$" <<<"$contents" || { echo "missing $p"; exit 1; }; ok
done
if grep -q 'etc/sudoers.d' <<<"$contents"; then echo "sudoers rule must not be enabled"; exit 1; fi; ok
[ "$(dpkg-deb -f "$deb" Package)" = vigil ]; ok
dpkg-deb -f "$deb" Recommends | grep -w telegraf >/dev/null; ok
if dpkg-deb -f "$deb" Depends | grep -w telegraf >/dev/null; then echo "telegraf must not be a hard dependency"; exit 1; fi; ok
dpkg-deb -I "$deb" conffiles | grep -x /etc/telegraf/telegraf.d/vigil.conf >/dev/null; ok

if [ "$(id -u)" != 0 ]; then
  echo "deb: $pass passed, 0 failed (install steps need root, skipped)"
  exit 0
fi
had=$(dpkg-query -W -f='${Status}' vigil 2>/dev/null || true)
dpkg -i "$deb" >/dev/null
/usr/bin/vigil --once --collectors pcie_platform,vigil | grep "^vigil " >/dev/null; ok
/usr/bin/vigil doctor >/dev/null; ok
echo "# local edit" >> /etc/telegraf/telegraf.d/vigil.conf
dpkg -i "$deb" >/dev/null
grep -q '^# local edit' /etc/telegraf/telegraf.d/vigil.conf; ok
if [ -z "$had" ]; then dpkg --purge vigil >/dev/null; [ ! -e /usr/bin/vigil ]; ok; fi
echo "deb: $pass passed, 0 failed"
