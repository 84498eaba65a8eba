#!/usr/bin/env bash
# Installs the C libraries Diorama links (zlib, zstd) from Debian when they are missing. Safe to run again.
set -euo pipefail
need=()
for pkg in zlib1g-dev libzstd-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}"
fi
