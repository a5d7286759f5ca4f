/// <reference types="vite/client" />

// What the build tells the page (vite.config.ts: envPrefix); see ./transport.ts, peerMode.
interface ImportMetaEnv {
  /** `web` or `plugin`: which way the page reaches the room, whatever runs it. */
  readonly VITE_PEER?: string;
  /** The target platform, set by the Tauri CLI for `beforeBuildCommand` (`android`, `ios`, `linux`, …). */
  readonly TAURI_ENV_PLATFORM?: string;
}
