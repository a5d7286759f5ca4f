// The page imports the hook's sources from ../../frontend-hook/src.  Those files import
// `react`, `@tauri-apps/api` and `@noble/*`: `dedupe` resolves them from this folder's node_modules,
// so there is one React and frontend-hook/node_modules is not needed.
import { defineConfig } from "vite";

export default defineConfig({
  // The built page is embedded by tauri::generate_context! (tauri.conf.json: frontendDist).
  base: "./",
  // VITE_PEER (web | plugin) and the Tauri CLI's TAURI_ENV_PLATFORM reach the page as
  // import.meta.env: src/transport.ts picks the plugin or a web peer with them.
  envPrefix: ["VITE_", "TAURI_ENV_"],
  esbuild: { jsx: "automatic" },
  resolve: { dedupe: ["react", "react-dom", "@tauri-apps/api", "@noble/curves", "@noble/hashes", "@noble/ciphers"] },
  server: { strictPort: true, fs: { allow: [".", "../../frontend-hook"] } },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
});
