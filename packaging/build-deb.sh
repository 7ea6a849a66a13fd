#!/usr/bin/env bash
# Build target/debian/vigil_<version>_<arch>.deb with dpkg-deb (no extra tools):
#   /usr/bin/vigil
#   /etc/telegraf/telegraf.d/vigil.conf          conffile: local edits survive upgrades
#   /usr/share/vigil/                            dashboard, alert rules, queries, snippet variants
#   /usr/share/doc/vigil/examples/sudoers.vigil  the privileged rule, as an example, not enabled
# Telegraf is recommended, not required. Prints the path of the package.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
cargo build --release -q
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 target/release/vigil "$stage/usr/bin/vigil"
install -D -m 0644 telegraf-snippets/vigil.conf "$stage/etc/telegraf/telegraf.d/vigil.conf"
for f in grafana-dashboard.json grafana-alerts.yaml queries.md vigil-interval.conf vigil-privileged.conf; do
  install -D -m 0644 "telegraf-snippets/$f" "$stage/usr/share/vigil/$f"
done
install -D -m 0644 telegraf-snippets/sudoers.vigil "$stage/usr/share/doc/vigil/examples/sudoers.vigil"
install -D -m 0644 README.md "$stage/usr/share/doc/vigil/README.md"
install -D -m 0644 docs/metrics.md "$stage/usr/share/doc/vigil/metrics.md"
cat > "$stage/usr/share/doc/vigil/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vigil
Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPY
mkdir -p "$stage/DEBIAN"
echo "/etc/telegraf/telegraf.d/vigil.conf" > "$stage/DEBIAN/conffiles"
size=$(du -sk "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CTRL
Package: vigil
Version: $version
Architecture: $arch
Maintainer: vigil developers <vigil@example.invalid>
Installed-Size: $size
Depends: libc6
Recommends: telegraf
Section: admin
Priority: optional
Homepage: https://example.invalid/vigil
Description: PCIe, passthrough and crash-forensics signals for Telegraf
 vigil ships the hardware signals a frozen Proxmox/KVM node takes with it:
 PCIe link state and downgrades, ASPM, AER counters and registers, device
 power states, vfio-pci binding and IOMMU groups, boot parameters,
 crash-forensics readiness, a heartbeat and kernel hardware events, as
 InfluxDB line protocol for Telegraf's inputs.execd. "vigil doctor" explains
 what a freeze would lose and how to fix it.
CTRL
mkdir -p target/debian
out="target/debian/vigil_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
