/**
 * The web peer's folders are its layers (docs/architecture.md): src/web/core/
 * holds the pure rules, shared with the sidecar through trace vectors; the
 * shells beside it (link.ts, signaling.ts, peer.ts) do the browser's I/O. A
 * core imports only other cores, the generated contract types, the pairing
 * cryptography and noble's libraries, and touches no timer, clock, socket or
 * peer connection of the browser's.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

const CORE = resolve(dirname(fileURLToPath(import.meta.url)), "../src/web/core");
const ALLOWED = [/^\.\/[a-z-]+$/, /^\.\.\/\.\.\/generated\/sidecar-types$/, /^\.\.\/\.\.\/pairing$/, /^@noble\//];
const IO = /(?<![\w.])(setTimeout|setInterval|Date\.now|performance\.now|WebSocket|RTCPeerConnection|fetch|localStorage|document|window)\b/;

function imports(source: string): string[] {
  return [...source.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1] ?? "");
}

function code(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
}

describe("src/web/core is the web peer's pure layer", () => {
  const files = readdirSync(CORE).filter((f) => f.endsWith(".ts"));

  it("has the shared cores", () => {
    expect(files).toEqual(expect.arrayContaining(["link.ts", "state.ts", "replica.ts", "follower.ts", "mesh.ts", "envelope.ts"]));
  });

  for (const file of files) {
    it(`${file} imports only cores, the contract and the cryptography`, () => {
      const source = readFileSync(join(CORE, file), "utf8");
      expect(imports(source).filter((spec) => !ALLOWED.some((re) => re.test(spec)))).toEqual([]);
      expect((IO.exec(code(source)))?.[0] ?? null).toBeNull();
    });
  }

  it("catches a core that reaches for the browser", () => {
    const bad = 'import { Link } from "../link";\nconst t = setTimeout(() => 0, 1);\n';
    expect(imports(bad)).toEqual(["../link"]);
    expect((IO.exec(code(bad)))?.[0]).toBe("setTimeout");
  });
});
