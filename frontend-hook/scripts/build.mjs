#!/usr/bin/env node
// @ts-check
/**
 * Builds the package as app developers take it (`npm run build`, run by
 * `prepack`, so `npm pack` always packs a fresh build): ESM and type
 * declarations of src/ in dist/, and dist/ConnectionStatus.css.
 *
 *   1. empties dist/;
 *   2. `tsc -p tsconfig.build.json` (src/ only: JS, .d.ts, source maps with
 *      the sources inlined, as src/ is not in the package);
 *   3. writes every relative import of the emitted .js and .d.ts files with
 *      its file's extension (`./useWebRTC` → `./useWebRTC.js`, `./pairing` →
 *      `./pairing/index.js`). The sources import without extensions, which
 *      only bundlers resolve; with them, the package also loads in Node's own
 *      ESM loader (a consumer's vitest runs dependencies there, unbundled) and
 *      type-checks under `moduleResolution` `node16`/`nodenext` as under
 *      `bundler`. A relative import that names no emitted file fails the build.
 *   4. copies src/ConnectionStatus.css.
 *
 * The repository's own users (vitest, the display page, tauri-bridge/example)
 * import src/ by path and never see dist/.
 */

import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** frontend-hook/ */
export const PACKAGE_ROOT = resolve(here, "..");
export const DIST = join(PACKAGE_ROOT, "dist");

/**
 * Every file under `dir`, recursively.
 * @param {string} dir
 * @returns {string[]}
 */
function walk(dir) {
  /** @type {string[]} */
  const files = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files.push(...walk(path));
    else files.push(path);
  }
  return files;
}

// `from "./x"`, `export * from "./x"`, `import "./x"`, `import("./x")` (the last in .d.ts type references)
const RELATIVE_SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(\.{1,2}\/[^"']*)\2/g;

/**
 * `source` (an emitted file in `dir`) with every relative import naming its file.
 * @param {string} source
 * @param {string} dir the emitted file's folder
 * @param {string} file the emitted file, for the error message
 * @returns {string}
 */
export function withExtensions(source, dir, file) {
  return source.replace(RELATIVE_SPECIFIER, (match, /** @type {string} */ lead, /** @type {string} */ quote, /** @type {string} */ spec) => {
    if (/\.(m?js|css|json)$/.test(spec)) return match;
    /** @type {string} */
    let resolved;
    if (existsSync(join(dir, `${spec}.js`))) resolved = `${spec}.js`;
    else if (existsSync(join(dir, spec, "index.js"))) resolved = `${spec}/index.js`;
    else throw new Error(`${relative(PACKAGE_ROOT, file)}: ${spec} names no emitted module`);
    return `${lead}${quote}${resolved}${quote}`;
  });
}

export function build() {
  rmSync(DIST, { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const result = spawnSync(process.execPath, [tsc, "-p", join(PACKAGE_ROOT, "tsconfig.build.json")], { stdio: "inherit" });
  if (result.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed (${String(result.status ?? result.signal)})`);
  let rewritten = 0;
  for (const file of walk(DIST)) {
    if (!file.endsWith(".js") && !file.endsWith(".d.ts")) continue;
    const source = readFileSync(file, "utf8");
    const fixed = withExtensions(source, dirname(file), file);
    if (fixed !== source) {
      writeFileSync(file, fixed);
      rewritten++;
    }
  }
  copyFileSync(join(PACKAGE_ROOT, "src", "ConnectionStatus.css"), join(DIST, "ConnectionStatus.css"));
  process.stdout.write(`built dist/ (${String(rewritten)} files' relative imports given their extensions)\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    build();
  } catch (err) {
    process.stderr.write(`build: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
