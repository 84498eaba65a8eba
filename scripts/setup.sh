#!/usr/bin/env bash
# Installs what Diorama needs from Debian when it is missing: the C libraries it links (zlib, zstd, SQLite), OpenBLAS
# and the PNG/JPEG/WebP decoders (loaded at run time: matrix products fall back to a built-in kernel, images fail with a
# clear message), the ffmpeg program `diorama render` pipes MP4 frames to, Chromium, which the studio's browser
# test drives headless, and PostgreSQL, of which the shared-store tests start throwaway clusters. Safe to run again.
set -euo pipefail
need=()
for pkg in zlib1g-dev libzstd-dev libsqlite3-dev pkg-config ffmpeg libopenblas0-pthread libpng16-16 libturbojpeg0 libwebp7 chromium postgresql; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
