// The display page, built into the sidecar's package (sidecar/static/display),
// which every desktop peer serves on its signaling port.
import { defineConfig } from "vite";

export default defineConfig({
  root: __dirname,
  base: "./",
  esbuild: { jsx: "automatic" },
  build: {
    outDir: "../../sidecar/static/display",
    emptyOutDir: true,
    target: "es2022",
    reportCompressedSize: false,
  },
});
