#!/usr/bin/env bash
# Sign a built .app of the example ad hoc, as a release would sign it with a
# Developer ID (README, "Shipping it in a Tauri app on macOS"): every Mach-O of
# the sidecar's support folder first, inside out, then the sidecar, then the
# app, all with the hardened runtime and the documented entitlements; then
# verify the whole bundle strictly. A library the hardened runtime would refuse
# fails here (and the stdio tests that the release workflow runs next fail on a
# library it will not load), not at a user's launch.
#
#   build/macos_sign.sh <path of the .app> <entitlements plist> [identity]
#
# identity: "-" (ad hoc, the default) or "Developer ID Application: …".
set -euo pipefail
app="$1"
entitlements="$2"
identity="${3:--}"
macos="$app/Contents/MacOS"
internal="$macos/mobile-worship-sidecar-internal"
[ -d "$internal" ] || { echo "no support folder at $internal: the bundle entry is missing" >&2; exit 1; }

sign() {
  codesign --force --options runtime --timestamp=none --entitlements "$entitlements" \
    --sign "$identity" "$1"
}

# Every Mach-O under the support folder, deepest first.
find "$internal" -type f -print0 | while IFS= read -r -d '' file; do
  if file -b "$file" | grep -q "Mach-O"; then
    printf '%s\t%s\n' "$(awk -F/ '{print NF}' <<<"$file")" "$file"
  fi
done | sort -rn | cut -f2- | while IFS= read -r file; do
  sign "$file"
done
sign "$macos/mobile-worship-sidecar"
sign "$app"
codesign --verify --deep --strict --verbose=2 "$app"
codesign --display --verbose=2 "$app" 2>&1 | grep -E "flags=.*runtime" >/dev/null \
  || { echo "the app is not signed with the hardened runtime" >&2; exit 1; }
echo "signed and verified: $app"
