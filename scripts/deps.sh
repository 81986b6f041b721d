#!/usr/bin/env bash
# Installs the Debian 12 packages uflow needs to build and test (idempotent; skips apt when
# everything is present). Uses sudo when not root.
set -euo pipefail
PKGS=(gcc clang meson ninja-build pkg-config python3 curl
      libvips-dev libopenblas-dev libjansson-dev libcmocka-dev
      libmicrohttpd-dev libcurl4-openssl-dev python3-yaml python3-jsonschema)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
