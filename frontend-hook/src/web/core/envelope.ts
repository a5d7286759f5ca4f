/**
 * Decoding a data-channel message as the sidecar does (msgspec, against
 * sidecar/contract/envelopes.py): JSON, then the envelope's schema, generated
 * from the same Structs (ENVELOPE_DEFS in src/generated/sidecar-types.ts).
 * Unknown fields, wrong types, strings too long or off-pattern and numbers out
 * of range are refused; absent fields with a default get it. A message that
 * does not decode is counted and dropped by the link, the same on both sides.
 */
import { ENVELOPE_DEFS, type Envelope } from "../../generated/sidecar-types";
import { codePoints } from "./text";

export class Malformed extends Error {}

type Node = Readonly<Record<string, unknown>>;

const patterns = new Map<string, RegExp>();

function pattern(source: string): RegExp {
  let re = patterns.get(source);
  if (re === undefined) patterns.set(source, (re = new RegExp(source, "u")));
  return re;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function def(name: string): Node {
  const node = ENVELOPE_DEFS[name];
  if (!isObject(node)) throw new Error(`no schema for ${name}`);
  return node;
}

/** `value` checked against `node`, with defaults filled in; throws Malformed. */
function check(value: unknown, node: Node, at: string): unknown {
  const ref = node.$ref;
  if (typeof ref === "string") return check(value, def(ref.replace("#/$defs/", "")), at);
  const anyOf = node.anyOf;
  if (Array.isArray(anyOf)) {
    const discriminator = node.discriminator;
    if (isObject(discriminator) && isObject(discriminator.mapping)) {
      const tag = isObject(value) ? value[String(discriminator.propertyName)] : undefined;
      const target = typeof tag === "string" ? discriminator.mapping[tag] : undefined;
      if (typeof target !== "string") throw new Malformed(`${at}: unknown type ${JSON.stringify(tag)}`);
      return check(value, { $ref: target }, at);
    }
    for (const choice of anyOf) {
      try {
        return check(value, choice as Node, at);
      } catch (err) {
        if (!(err instanceof Malformed)) throw err;
      }
    }
    throw new Malformed(`${at}: no choice fits`);
  }
  if (Array.isArray(node.enum)) {
    if (!node.enum.includes(value)) throw new Malformed(`${at}: not one of ${JSON.stringify(node.enum)}`);
    return value;
  }
  switch (node.type) {
    case undefined:
      return value; // any JSON value (a payload)
    case "null":
      if (value !== null) throw new Malformed(`${at}: expected null`);
      return value;
    case "boolean":
      if (typeof value !== "boolean") throw new Malformed(`${at}: expected a boolean`);
      return value;
    case "integer":
      if (typeof value !== "number" || !Number.isInteger(value)) throw new Malformed(`${at}: expected an integer`);
      if (typeof node.minimum === "number" && value < node.minimum) throw new Malformed(`${at}: below ${node.minimum}`);
      if (typeof node.maximum === "number" && value > node.maximum) throw new Malformed(`${at}: above ${node.maximum}`);
      return value;
    case "string": {
      if (typeof value !== "string") throw new Malformed(`${at}: expected a string`);
      const length = codePoints(value);
      if (typeof node.minLength === "number" && length < node.minLength) throw new Malformed(`${at}: too short`);
      if (typeof node.maxLength === "number" && length > node.maxLength) throw new Malformed(`${at}: too long`);
      if (typeof node.pattern === "string" && !pattern(node.pattern).test(value)) throw new Malformed(`${at}: off pattern`);
      return value;
    }
    case "array": {
      if (!Array.isArray(value)) throw new Malformed(`${at}: expected an array`);
      if (typeof node.maxItems === "number" && value.length > node.maxItems) throw new Malformed(`${at}: too many items`);
      const items = node.items as Node;
      return value.map((item, i) => check(item, items, `${at}[${i}]`));
    }
    case "object": {
      if (!isObject(value)) throw new Malformed(`${at}: expected an object`);
      const properties = (node.properties ?? {}) as Record<string, Node>;
      const required = new Set((node.required ?? []) as string[]);
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(value)) {
        if (!Object.hasOwn(properties, key)) throw new Malformed(`${at}: unknown field ${JSON.stringify(key)}`);
      }
      for (const [key, sub] of Object.entries(properties)) {
        if (Object.hasOwn(value, key)) out[key] = check(value[key], sub, `${at}.${key}`);
        else if (required.has(key)) throw new Malformed(`${at}: missing ${key}`);
        else if ("default" in sub) out[key] = sub.default;
      }
      return out;
    }
    default:
      throw new Error(`${at}: schema type ${String(node.type)} not handled`);
  }
}

/** One data-channel message as an envelope; throws Malformed. */
export function decodeEnvelope(text: string): Envelope {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Malformed("not JSON");
  }
  return check(value, def("Envelope"), "$") as Envelope;
}
