#!/usr/bin/env node
// @ts-check
/**
 * Generates src/generated/sidecar-types.ts from the sidecar's JSON Schema, and
 * the same file for the Tauri plugin's JS bindings
 * (tauri-bridge/crates/tauri-plugin-mobile-worship/guest-js/sidecar-types.ts:
 * the plugin's .crate holds its guest-js/, which cannot reach into frontend-hook/).
 *
 * The schema (draft 2020-12, every type under `$defs`) is the one that
 * `mobile-worship-sidecar schema` prints; the sidecar builds it from its
 * msgspec Structs, which are the single definition of every message. This
 * file turns each `$defs` entry into one exported TypeScript type, so no
 * payload type is ever written twice by hand.
 *
 * Usage (from frontend-hook/ or anywhere):
 *   node scripts/gen-types.mjs                  run `uv run mobile-worship-sidecar schema` at the repo root
 *   node scripts/gen-types.mjs --schema FILE    read a saved schema instead ("-" for stdin)
 *   node scripts/gen-types.mjs --check [...]    write nothing; exit 1 if a committed file is stale
 *   node scripts/gen-types.mjs --out FILE       write FILE only (default: both files above)
 *
 * A small generator of its own rather than json-schema-to-typescript: the
 * schema is `$defs` only (no root type), and the output here is named after
 * the `$defs` keys, deterministic, and free of a formatter dependency. It
 * handles the JSON Schema subset that msgspec emits and fails loudly on
 * anything else.
 */

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** @typedef {Record<string, unknown>} Schema */

const here = dirname(fileURLToPath(import.meta.url));

/** frontend-hook/ */
export const PACKAGE_ROOT = resolve(here, "..");
/** The repository root, where `uv run mobile-worship-sidecar` works. */
export const REPO_ROOT = resolve(PACKAGE_ROOT, "..");
/** The committed output. */
export const OUTPUT_FILE = join(PACKAGE_ROOT, "src", "generated", "sidecar-types.ts");
/** Its committed copy beside the Tauri plugin's JS bindings (the same text). */
export const GUEST_JS_FILE = join(
  REPO_ROOT,
  "tauri-bridge",
  "crates",
  "tauri-plugin-mobile-worship",
  "guest-js",
  "sidecar-types.ts",
);
/** The command that prints the schema, run at REPO_ROOT. */
export const SCHEMA_COMMAND = ["uv", "run", "--locked", "--quiet", "mobile-worship-sidecar", "schema"];

// ---------------------------------------------------------------- sources

/**
 * The full path of `uv` on PATH, or null.
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {string | null}
 */
export function findUv(env = process.env) {
  const names = process.platform === "win32" ? ["uv.exe", "uv.cmd", "uv"] : ["uv"];
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    for (const name of names) {
      const candidate = join(dir, name);
      if (existsSync(candidate)) return candidate;
    }
  }
  return null;
}

/**
 * Why the sidecar's schema cannot be printed here, or null when it can.
 * @returns {string | null}
 */
export function sidecarUnavailableReason() {
  if (!existsSync(join(REPO_ROOT, "pyproject.toml")) || !existsSync(join(REPO_ROOT, "sidecar"))) {
    return `no sidecar project at ${REPO_ROOT} (frontend-hook/ is not inside the mobile-worship repository)`;
  }
  if (findUv() === null) {
    return "`uv` is not on PATH, so `uv run mobile-worship-sidecar schema` cannot run (install uv, or source scripts/_uv.sh)";
  }
  return null;
}

/**
 * Runs `uv run mobile-worship-sidecar schema` at the repo root and parses its output.
 * @returns {Schema}
 */
export function schemaFromSidecar() {
  const [cmd, ...args] = SCHEMA_COMMAND;
  const run = spawnSync(/** @type {string} */ (cmd), args, {
    cwd: REPO_ROOT,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (run.error) {
    throw new Error(`could not run \`${SCHEMA_COMMAND.join(" ")}\` in ${REPO_ROOT}: ${run.error.message}`);
  }
  if (run.status !== 0) {
    throw new Error(
      `\`${SCHEMA_COMMAND.join(" ")}\` exited with ${String(run.status ?? run.signal)} in ${REPO_ROOT}:\n${run.stderr}`,
    );
  }
  return parseSchema(run.stdout, SCHEMA_COMMAND.join(" "));
}

/**
 * Reads a saved schema file ("-": stdin).
 * @param {string} path
 * @returns {Schema}
 */
export function schemaFromFile(path) {
  const text = path === "-" ? readFileSync(0, "utf8") : readFileSync(path, "utf8");
  return parseSchema(text, path === "-" ? "stdin" : path);
}

/**
 * @param {string} text
 * @param {string} origin
 * @returns {Schema}
 */
function parseSchema(text, origin) {
  /** @type {unknown} */
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${origin}: not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isObject(value) || !isObject(value.$defs)) {
    throw new Error(`${origin}: not a JSON Schema with $defs`);
  }
  return value;
}

// -------------------------------------------------------------- generator

/**
 * @param {unknown} value
 * @returns {value is Schema}
 */
function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * `get_leader_status_result` -> `GetLeaderStatusResult`; `PeerInfo` stays.
 * @param {string} key
 */
export function typeName(key) {
  const name = key
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join("");
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name)) {
    throw new Error(`$defs key ${JSON.stringify(key)} gives no valid TypeScript name`);
  }
  return name;
}

/** Keywords that only constrain values (documented, not typed) or annotate. */
const DOC_KEYWORDS = new Set([
  "title",
  "description",
  "default",
  "examples",
  "minLength",
  "maxLength",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "pattern",
  "format",
  "minItems",
  "maxItems",
  "uniqueItems",
  "minProperties",
  "maxProperties",
  "discriminator",
  "$comment",
  "deprecated",
  "readOnly",
  "writeOnly",
]);

const TYPE_KEYWORDS = new Set([
  "type",
  "enum",
  "const",
  "$ref",
  "anyOf",
  "oneOf",
  "allOf",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "prefixItems",
]);

/**
 * Stable JSON of a schema without its annotations, to match inline schemas to named ones.
 * @param {unknown} schema
 * @returns {string}
 */
function shapeKey(schema) {
  /** @param {unknown} v @returns {unknown} */
  const strip = (v) => {
    if (Array.isArray(v)) return v.map(strip);
    if (!isObject(v)) return v;
    /** @type {Schema} */
    const out = {};
    for (const k of Object.keys(v).sort()) {
      if (k === "title" || k === "description" || k === "default" || k === "$comment") continue;
      out[k] = strip(v[k]);
    }
    return out;
  };
  return JSON.stringify(strip(schema));
}

/**
 * @param {string} text
 */
function commentSafe(text) {
  return text.replace(/\*\//g, "*\\/");
}

/**
 * Lines of a description taken from a Python docstring: the common indentation
 * of the lines after the first removed, blank lines at both ends dropped.
 * @param {string} text
 * @returns {string[]}
 */
function cleandoc(text) {
  const lines = text.replace(/\t/g, "    ").split("\n");
  const indents = lines
    .slice(1)
    .filter((l) => l.trim() !== "")
    .map((l) => l.length - l.trimStart().length);
  const margin = indents.length > 0 ? Math.min(...indents) : 0;
  const out = [(lines[0] ?? "").trim(), ...lines.slice(1).map((l) => l.slice(margin).trimEnd())];
  while (out.length > 0 && out[0] === "") out.shift();
  while (out.length > 0 && out[out.length - 1] === "") out.pop();
  return out;
}

/**
 * JSDoc lines of a schema: description, then constraints and default.
 * @param {Schema} schema
 * @returns {string[]}
 */
function docLines(schema) {
  /** @type {string[]} */
  const lines = [];
  if (typeof schema.description === "string") lines.push(...cleandoc(schema.description));
  for (const key of [
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
    "format",
    "minItems",
    "maxItems",
  ]) {
    if (key in schema) lines.push(`@${key} ${typeof schema[key] === "string" ? schema[key] : JSON.stringify(schema[key])}`);
  }
  if ("default" in schema) lines.push(`@default ${JSON.stringify(schema.default)}`);
  return lines.map(commentSafe);
}

/**
 * @param {string[]} lines
 * @param {string} indent
 */
function jsdoc(lines, indent) {
  if (lines.length === 0) return "";
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? ` ${l}` : ""}`).join("\n")}\n${indent} */\n`;
}

/**
 * @param {string} name
 */
function propertyKey(name) {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
}

/**
 * Whether a type expression has a `|` or `&` outside brackets, braces and strings.
 * @param {string} type
 */
function isCompound(type) {
  let depth = 0;
  let quote = "";
  for (let i = 0; i < type.length; i++) {
    const c = type.charAt(i);
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "{" || c === "[" || c === "(") depth++;
    else if (c === "}" || c === "]" || c === ")") depth--;
    else if (depth === 0 && (c === "|" || c === "&")) return true;
  }
  return false;
}

/**
 * @param {string} type
 */
function parenthesize(type) {
  return isCompound(type) ? `(${type})` : type;
}

/**
 * @param {string[]} members
 */
function union(members) {
  const unique = [...new Set(members)];
  if (unique.includes("unknown")) return "unknown";
  return unique.join(" | ");
}

/**
 * Generates the TypeScript source for a `$defs` JSON Schema.
 * @param {Schema} schema
 * @returns {string}
 */
export function generate(schema) {
  if (!isObject(schema.$defs)) throw new Error("schema has no $defs");
  const defs = /** @type {Record<string, unknown>} */ (schema.$defs);
  const keys = Object.keys(defs);

  /** @type {Map<string, string>} $defs key -> type name */
  const names = new Map();
  /** @type {Map<string, string>} type name -> $defs key */
  const taken = new Map();
  for (const key of keys) {
    const name = typeName(key);
    const clash = taken.get(name);
    if (clash !== undefined) throw new Error(`$defs ${clash} and ${key} both map to type ${name}`);
    taken.set(name, key);
    names.set(key, name);
  }

  // Inline enums identical to a named enum-only def print as that name
  // (PeerInfo.peer_type: PeerType rather than "controller" | "display").
  /** @type {Map<string, string>} shape -> type name */
  const namedEnums = new Map();
  for (const key of keys) {
    const def = defs[key];
    if (isObject(def) && Array.isArray(def.enum) && Object.keys(def).every((k) => k === "enum" || DOC_KEYWORDS.has(k))) {
      const shape = shapeKey(def);
      if (!namedEnums.has(shape)) namedEnums.set(shape, /** @type {string} */ (names.get(key)));
    }
  }

  /**
   * @param {string} ref
   * @param {string} at
   */
  const refName = (ref, at) => {
    const m = /^#\/\$defs\/(.+)$/.exec(ref);
    const key = m?.[1]?.replace(/~1/g, "/").replace(/~0/g, "~");
    const name = key === undefined ? undefined : names.get(key);
    if (name === undefined) throw new Error(`${at}: unsupported or dangling $ref ${JSON.stringify(ref)}`);
    return name;
  };

  /**
   * @param {unknown} node
   * @param {string} at JSON pointer-ish location, for errors
   * @param {string} indent indentation of the line the type starts on
   * @param {boolean} top whether this is the def itself (never replaced by its own name)
   * @returns {string}
   */
  const render = (node, at, indent, top = false) => {
    if (node === true) return "unknown";
    if (node === false) return "never";
    if (!isObject(node)) throw new Error(`${at}: schema is not an object`);
    for (const k of Object.keys(node)) {
      if (!TYPE_KEYWORDS.has(k) && !DOC_KEYWORDS.has(k)) throw new Error(`${at}: unsupported keyword ${JSON.stringify(k)}`);
    }
    if (!top && Array.isArray(node.enum)) {
      const named = namedEnums.get(shapeKey(node));
      if (named !== undefined) return named;
    }
    /** @type {string[]} intersected parts */
    const parts = [];
    if (typeof node.$ref === "string") parts.push(refName(node.$ref, at));
    if ("const" in node) parts.push(JSON.stringify(node.const));
    if (Array.isArray(node.enum)) parts.push(union(node.enum.map((v) => JSON.stringify(v))));
    for (const kw of ["anyOf", "oneOf"]) {
      const alts = node[kw];
      if (alts === undefined) continue;
      if (!Array.isArray(alts)) throw new Error(`${at}/${kw}: not a list`);
      parts.push(union(alts.map((alt, i) => render(alt, `${at}/${kw}/${String(i)}`, indent))));
    }
    if (node.allOf !== undefined) {
      if (!Array.isArray(node.allOf)) throw new Error(`${at}/allOf: not a list`);
      parts.push(...node.allOf.map((alt, i) => render(alt, `${at}/allOf/${String(i)}`, indent)));
    }
    if (node.type !== undefined) parts.push(renderTyped(node, at, indent));
    if (parts.length === 0) return "unknown";
    if (parts.length === 1) return /** @type {string} */ (parts[0]);
    return parts.map(parenthesize).join(" & ");
  };

  /**
   * @param {Schema} node
   * @param {string} at
   * @param {string} indent
   * @returns {string}
   */
  const renderTyped = (node, at, indent) => {
    const types = Array.isArray(node.type) ? node.type : [node.type];
    const members = types.map((t) => {
      switch (t) {
        case "string":
          return "string";
        case "integer":
        case "number":
          return "number";
        case "boolean":
          return "boolean";
        case "null":
          return "null";
        case "array":
          return renderArray(node, at, indent);
        case "object":
          return renderObject(node, at, indent);
        default:
          throw new Error(`${at}: unsupported type ${JSON.stringify(t)}`);
      }
    });
    return union(members);
  };

  /**
   * @param {Schema} node
   * @param {string} at
   * @param {string} indent
   */
  const renderArray = (node, at, indent) => {
    if (node.prefixItems !== undefined) {
      if (!Array.isArray(node.prefixItems)) throw new Error(`${at}/prefixItems: not a list`);
      const head = node.prefixItems.map((item, i) => render(item, `${at}/prefixItems/${String(i)}`, indent));
      const rest = node.items === false || node.items === undefined ? [] : [`...${wrapArrayItem(render(node.items, `${at}/items`, indent))}[]`];
      return `[${[...head, ...rest].join(", ")}]`;
    }
    const item = node.items === undefined ? "unknown" : render(node.items, `${at}/items`, indent);
    return `${wrapArrayItem(item)}[]`;
  };

  /**
   * @param {string} item
   */
  const wrapArrayItem = parenthesize;

  /**
   * @param {Schema} node
   * @param {string} at
   * @param {string} indent
   */
  const renderObject = (node, at, indent) => {
    const properties = node.properties ?? {};
    if (!isObject(properties)) throw new Error(`${at}/properties: not an object`);
    const required = new Set(Array.isArray(node.required) ? node.required : []);
    const inner = `${indent}  `;
    let body = "";
    for (const [prop, sub] of Object.entries(properties)) {
      const doc = isObject(sub) ? jsdoc(docLines(sub), inner) : "";
      const optional = required.has(prop) ? "" : "?";
      body += `${doc}${inner}${propertyKey(prop)}${optional}: ${render(sub, `${at}/properties/${prop}`, inner)};\n`;
    }
    for (const prop of required) {
      if (typeof prop !== "string" || !(prop in properties)) throw new Error(`${at}: required ${JSON.stringify(prop)} has no property`);
    }
    const extra = node.additionalProperties;
    if (extra === undefined || extra === true) {
      body += `${inner}[key: string]: unknown;\n`;
    } else if (extra !== false) {
      body += `${inner}[key: string]: ${render(extra, `${at}/additionalProperties`, inner)};\n`;
    }
    return body === "" ? "Record<string, never>" : `{\n${body}${indent}}`;
  };

  const title = typeof schema.title === "string" ? schema.title : "JSON Schema";
  const id = typeof schema.$id === "string" ? ` (${schema.$id})` : "";
  let out =
    "/**\n" +
    ` * Types of the ${commentSafe(title)}${commentSafe(id)}.\n` +
    " *\n" +
    " * GENERATED by frontend-hook/scripts/gen-types.mjs from the JSON Schema that\n" +
    " * `mobile-worship-sidecar schema` prints. Do not edit: run `npm run gen:types`.\n" +
    " */\n";

  /** @type {string[]} */
  const results = [];
  for (const key of keys) {
    const def = defs[key];
    const name = /** @type {string} */ (names.get(key));
    const at = `#/$defs/${key}`;
    const lines = isObject(def) ? docLines(def) : [];
    if (key !== name) lines.unshift(`\`${key}\` in the schema.`, ...(lines.length ? [""] : []));
    out += `\n${jsdoc(lines, "")}`;
    const isPlainObject =
      isObject(def) &&
      def.type === "object" &&
      def.additionalProperties === false &&
      isObject(def.properties) &&
      Object.keys(def.properties).length > 0 &&
      Object.keys(def).every((k) => !["$ref", "anyOf", "oneOf", "allOf", "enum", "const"].includes(k));
    if (isPlainObject) {
      out += `export interface ${name} ${renderObject(def, at, "")}\n`;
    } else {
      out += `export type ${name} = ${render(def, at, "", true)};\n`;
    }
    const m = /^(.+)_result$/.exec(key);
    if (m?.[1] !== undefined) results.push(`  ${propertyKey(m[1])}: ${name};\n`);
  }

  if (results.length > 0) {
    out +=
      "\n/** The result type of each JSON-RPC method, from the `<method>_result` entries of the schema. */\n" +
      `export interface SidecarMethodResults {\n${results.join("")}}\n`;
  }
  if ("Envelope" in defs) {
    out +=
      "\n/**\n * The schema of a data-channel envelope (`Envelope` and every `$defs` entry it\n" +
      " * reaches, without their prose): what src/web/core/envelope.ts checks a\n" +
      " * received message against, as the sidecar's msgspec decoder does.\n */\n" +
      `export const ENVELOPE_DEFS: Readonly<Record<string, unknown>> = ${JSON.stringify(reachable(defs, "Envelope"), null, 2)};\n`;
  }
  return out;
}

/**
 * The `$defs` entries reachable from `root`, with `title` and `description` left out.
 * @param {Schema} defs
 * @param {string} root
 * @returns {Schema}
 */
function reachable(defs, root) {
  /** @type {Schema} */
  const found = {};
  /** @param {unknown} node @returns {unknown} */
  const strip = (node) => {
    if (Array.isArray(node)) return node.map(strip);
    if (!isObject(node)) return node;
    /** @type {Schema} */
    const copy = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === "title" || key === "description") continue;
      if (key === "$ref" && typeof value === "string") visit(value.replace("#/$defs/", ""));
      copy[key] = key === "properties" && isObject(value)
        ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, strip(v)]))
        : strip(value);
    }
    return copy;
  };
  /** @param {string} name */
  const visit = (name) => {
    if (name in found) return;
    found[name] = {};
    found[name] = strip(defs[name]);
  };
  visit(root);
  return Object.fromEntries(Object.keys(found).sort().map((k) => [k, found[k]]));
}

// -------------------------------------------------------------------- CLI

/**
 * @param {string[]} argv
 */
function parseArgs(argv) {
  /** @type {{ check: boolean, schema: string | null, out: string[] }} */
  const opts = { check: false, schema: null, out: [OUTPUT_FILE, GUEST_JS_FILE] };
  for (let i = 0; i < argv.length; i++) {
    const arg = /** @type {string} */ (argv[i]);
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--check") opts.check = true;
    else if (arg === "--schema") opts.schema = value();
    else if (arg.startsWith("--schema=")) opts.schema = arg.slice("--schema=".length);
    else if (arg === "--out") opts.out = [resolve(value())];
    else if (arg.startsWith("--out=")) opts.out = [resolve(arg.slice("--out=".length))];
    else if (arg === "-h" || arg === "--help") {
      process.stdout.write(
        "usage: gen-types.mjs [--check] [--schema FILE|-] [--out FILE] [FILE]\n" +
          "  without a schema file, runs `uv run mobile-worship-sidecar schema` at the repo root\n",
      );
      process.exit(0);
    } else if ((arg === "-" || !arg.startsWith("-")) && opts.schema === null) opts.schema = arg;
    else throw new Error(`unknown argument ${JSON.stringify(arg)}`);
  }
  return opts;
}

/**
 * @param {string[]} argv
 * @returns {number} exit code
 */
export function main(argv) {
  const opts = parseArgs(argv);
  const schema = opts.schema !== null ? schemaFromFile(opts.schema === "-" ? "-" : resolve(opts.schema)) : schemaFromSidecar();
  const source = generate(schema);
  const origin = opts.schema ?? SCHEMA_COMMAND.join(" ");
  if (opts.check) {
    let status = 0;
    for (const out of opts.out) {
      const current = existsSync(out) ? readFileSync(out, "utf8") : null;
      if (current === source) {
        process.stdout.write(`${out} is up to date with ${origin}\n`);
        continue;
      }
      process.stderr.write(
        `${out} is ${current === null ? "missing" : "stale"}: the sidecar's schema changed. ` +
          "Run `npm run gen:types` in frontend-hook/ and commit the result.\n",
      );
      status = 1;
    }
    return status;
  }
  for (const out of opts.out) {
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, source);
    process.stdout.write(`wrote ${out} from ${origin}\n`);
  }
  return 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`gen-types: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
