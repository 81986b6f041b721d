#!/usr/bin/env bash
# Installs what the real-browser test of uflowd's page (meson test ui_browser) needs, and
# nothing the rest of the build needs (scripts/deps.sh stays light): Debian's chromium, Node.js
# and npm when missing, and npm playwright-core at a pinned version into build-node/ (ignored
# by git). --ignore-scripts: playwright-core downloads no browser; the test drives
# /usr/bin/chromium. Idempotent; uses sudo for apt when not root.
# Usage: scripts/browser-deps.sh   then   meson test -C build ui_browser
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYWRIGHT_CORE_VERSION=1.65.2   # needs Node.js >= 20
DIR=${UFLOW_PLAYWRIGHT_PREFIX:-build-node}

pkgs=()
[ -x /usr/bin/chromium ] || pkgs+=(chromium)
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
if [ ${#pkgs[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${pkgs[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "Node.js $(node --version) is too old for playwright-core $PLAYWRIGHT_CORE_VERSION (needs >= 20)" >&2
  exit 1
fi
have=$(node -p "require('./$DIR/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [ "$have" != "$PLAYWRIGHT_CORE_VERSION" ]; then
  mkdir -p "$DIR"
  npm install --prefix "$DIR" --ignore-scripts --no-audit --no-fund --loglevel=error \
      "playwright-core@$PLAYWRIGHT_CORE_VERSION" >&2
fi
echo "browser test tools: $(/usr/bin/chromium --version 2>/dev/null | head -1), node $(node --version)," \
     "playwright-core $PLAYWRIGHT_CORE_VERSION in $DIR/node_modules"
