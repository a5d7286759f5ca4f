#!/usr/bin/env bash
# The frontend hook's checks (frontend-hook/): install from the lock, generated
# types up to date with the sidecar's schema, eslint, tsc, vitest. Exits
# non-zero on the first failure. Needs node >= 20.19 and npm; puts uv on PATH
# (scripts/_uv.sh) so the staleness check can print the sidecar's schema.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_uv.sh

command -v npm >/dev/null 2>&1 || { echo "test-frontend: npm is not on PATH (node >= 20.19 needed)" >&2; exit 1; }

cd frontend-hook
echo "== frontend: npm ci" >&2
npm ci --no-audit --no-fund
echo "== frontend: generated types up to date" >&2
npm run --silent gen:types:check
echo "== frontend: eslint" >&2
npm run --silent lint
echo "== frontend: tsc" >&2
npm run --silent typecheck
npx --no-install tsc -p tsconfig.guest-js.json  # the Tauri plugin's JS bindings
echo "== frontend: the display page built into the sidecar is up to date" >&2
fresh=$(mktemp -d)
npx --no-install vite build --config display/vite.config.ts --outDir "$fresh" --emptyOutDir --logLevel warn
if ! diff -r "$fresh" ../sidecar/static/display >/dev/null; then
  echo "sidecar/static/display is stale: run (cd frontend-hook && npm run build:display)" >&2
  rm -rf "$fresh"
  exit 1
fi
rm -rf "$fresh"
echo "== frontend: vitest" >&2
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
npm test -- --reporter=default --reporter=json --outputFile.json="$report" || status=$?
# One plain closing line that any reader of test output understands.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$report" 2>/dev/null || true
exit "$status"
