#!/usr/bin/env bash
# Writes the image-decoding fixtures with ffmpeg: a 36x22 test pattern as PNG, as lossless WebP (decodes to the same
# pixels) and as a high-quality JPEG (close, not identical). Run from the repository root.
set -euo pipefail
out=Tests/MediaIOTests/Fixtures
mkdir -p "$out"
ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=36x22:rate=1" -frames:v 1 -pix_fmt rgb24 "$out/pattern.png"
ffmpeg -loglevel error -y -i "$out/pattern.png" -c:v libwebp -lossless 1 "$out/pattern.webp"
ffmpeg -loglevel error -y -i "$out/pattern.png" -q:v 1 -pix_fmt yuvj444p "$out/pattern.jpg"
ls -l "$out"
