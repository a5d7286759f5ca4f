// @vitest-environment node
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

import {
  OUTPUT_FILE,
  SCHEMA_COMMAND,
  generate,
  schemaFromSidecar,
  sidecarUnavailableReason,
  typeName,
} from "../scripts/gen-types.mjs";

describe("gen-types", () => {
  it("is up to date with the sidecar's schema", (ctx) => {
    const reason = sidecarUnavailableReason();
    if (reason !== null) {
      // Say why, loudly: a skipped staleness check must not pass for a green one.
      console.warn(`SKIPPED staleness check of src/generated/sidecar-types.ts: ${reason}`);
      ctx.skip(`staleness check skipped: ${reason}`);
    }
    const fresh = generate(schemaFromSidecar());
    const committed = readFileSync(OUTPUT_FILE, "utf8");
    // toBe's diff shows which types changed; the message says what to do
    expect(
      committed,
      `src/generated/sidecar-types.ts is stale against \`${SCHEMA_COMMAND.join(" ")}\`: run \`npm run gen:types\` in frontend-hook/ and commit it`,
    ).toBe(fresh);
  }, 300_000);

  it("names types after their $defs keys", () => {
    expect(typeName("PeerInfo")).toBe("PeerInfo");
    expect(typeName("get_leader_status_result")).toBe("GetLeaderStatusResult");
    expect(() => typeName("9lives")).toThrow(/no valid TypeScript name/);
  });

  it("generates interfaces, aliases, optional fields, named enums and the result map", () => {
    const source = generate({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      title: "toy",
      $defs: {
        Kind: { enum: ["a", "b"] },
        Thing: {
          title: "Thing",
          description: "A thing.\n\n    With a docstring's indentation.",
          type: "object",
          properties: {
            id: { type: "string", minLength: 1, description: "its id" },
            kind: { enum: ["a", "b"] },
            size: { type: "integer", default: 3 },
            tags: { type: "array", items: { anyOf: [{ type: "string" }, { type: "null" }] } },
            parent: { anyOf: [{ $ref: "#/$defs/Thing" }, { type: "null" }], default: null },
            payload: {},
            "odd-key": { type: "boolean" },
          },
          required: ["id", "kind", "payload"],
          additionalProperties: false,
        },
        Open: { type: "object", properties: { x: { type: "number" } } },
        Empty: { type: "object", properties: {}, required: [], additionalProperties: false },
        Either: { anyOf: [{ $ref: "#/$defs/Thing" }, { $ref: "#/$defs/Open" }] },
        do_it_result: { type: "array", items: { $ref: "#/$defs/Thing" } },
        done_result: { type: "null" },
      },
    });
    expect(source).toContain('export type Kind = "a" | "b";');
    expect(source).toContain("export interface Thing {");
    expect(source).toContain(" * A thing.\n *\n * With a docstring's indentation.\n");
    expect(source).toContain("  /**\n   * its id\n   * @minLength 1\n   */\n  id: string;");
    expect(source).toContain("  kind: Kind;");
    expect(source).toContain("  /** @default 3 */\n  size?: number;");
    expect(source).toContain("  tags?: (string | null)[];");
    expect(source).toContain("  parent?: Thing | null;");
    expect(source).toContain("  payload: unknown;");
    expect(source).toContain('  "odd-key"?: boolean;');
    expect(source).toContain("export type Open = {\n  x?: number;\n  [key: string]: unknown;\n};");
    expect(source).toContain("export type Empty = Record<string, never>;");
    expect(source).toContain("export type Either = Thing | Open;");
    expect(source).toContain("/** `do_it_result` in the schema. */\nexport type DoItResult = Thing[];");
    expect(source).toContain("export interface SidecarMethodResults {\n  do_it: DoItResult;\n  done: DoneResult;\n}");
  });

  it("fails loudly on what it does not understand", () => {
    expect(() => generate({ $defs: { X: { $ref: "#/$defs/Missing" } } })).toThrow(/dangling \$ref/);
    expect(() => generate({ $defs: { X: { type: "object", if: {} } } })).toThrow(/unsupported keyword "if"/);
    expect(() => generate({ $defs: { X: { type: "date" } } })).toThrow(/unsupported type "date"/);
    expect(() => generate({ $defs: { a_b: {}, AB: {} } })).toThrow(/both map to type AB/);
    expect(() => generate({})).toThrow(/no \$defs/);
  });
});
