#!/usr/bin/env bash
# The Rust side: tauri-bridge/ (sidecar-client, the Tauri plugin, the example app).
# Installs what it needs itself: on Debian/Ubuntu as root the WebKitGTK build packages
# (and iproute2 for the network-namespace test), the locked Python env of the sidecar
# (its tests spawn the real sidecar), and the example's page (npm ci, tsc, vite build: its
# dist/ is embedded in the example app).  Then `cargo test` and `cargo build` of the example,
# and the packages app developers take (tests/packaging).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
. scripts/_uv.sh

step() { echo "== rust: $*" >&2; }
elapsed() { echo "   ($(( SECONDS - $1 )) s)" >&2; }

if [ "$(uname -s)" = Linux ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && command -v dpkg-query >/dev/null; then
  # Tauri v2's Linux prerequisites (WebKitGTK 4.1, GTK 3, libsoup 3, ...).
  wanted=(libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev
          libsoup-3.0-dev libjavascriptcoregtk-4.1-dev build-essential pkg-config libssl-dev)
  command -v ip >/dev/null || wanted+=(iproute2)
  missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    t=$SECONDS
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    elapsed $t
  fi
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust (1.90 or newer)" >&2; exit 1; }

step "python sidecar env (uv sync --locked)"
uv sync --locked --quiet

# The example's page (React + the frontend-hook/ sources, built by Vite): tauri's
# generate_context! embeds example/dist at compile time, and `cargo test --workspace`
# compiles the example crate too, so it is built before any cargo step.
command -v npm >/dev/null || { echo "npm not found: install Node.js (20.19 or newer)" >&2; exit 1; }
cd "$root/tauri-bridge/example"
step "example page (npm ci, tsc, vite build)"
t=$SECONDS
npm ci --no-audit --no-fund
npm run --silent typecheck
npm run --silent build
elapsed $t

# Until the frozen sidecar is built (later, by scripts/test), the example runs the Python
# one from PATH: the Cargo feature dev-sidecar (example/src-tauri/build.rs).
dev=(--features mobile-worship-example/dev-sidecar)
cd "$root/tauri-bridge"
step "cargo test --workspace --locked"
t=$SECONDS
cargo test --workspace --locked "${dev[@]}"
elapsed $t

step "cargo fmt --check, cargo clippy -D warnings"
t=$SECONDS
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
  command -v rustup >/dev/null || { echo "cargo clippy and cargo fmt are needed: install the clippy and rustfmt components" >&2; exit 1; }
  rustup component add clippy rustfmt
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked "${dev[@]}" -- -D warnings
elapsed $t

step "cargo build --locked -p mobile-worship-example --features dev-sidecar"
t=$SECONDS
cargo build --locked -p mobile-worship-example --features dev-sidecar
elapsed $t

# The crates and the hook as app developers take them: `cargo package` of sidecar-client
# and the plugin (verified), `npm pack` of frontend-hook/, each used by a scratch app in a
# temporary folder outside the repository (tests/packaging; it reuses the target folder the
# steps above filled, so it comes last).
step "packages: cargo package, npm pack, scratch apps outside the repository (tests/packaging)"
t=$SECONDS
cd "$root"
uv run --locked pytest tests/packaging
elapsed $t

leftover=$(ip netns list 2>/dev/null | grep -E '^mwr[0-9]+x' || true)
if [ -n "$leftover" ]; then
  echo "test lab namespaces left behind: $leftover" >&2
  exit 1
fi
