// The room keys this device keeps, one per room (docs/api.md, "Keyed rooms and pairing").
import { invoke } from "@tauri-apps/api/core";

import type { PeerMode } from "./transport";

export interface RoomKeys {
  /** The key kept for `room` from an earlier run, or null. */
  saved(room: string): Promise<string | null>;
  forget(room: string): Promise<void>;
  /** A key the room gave this device (created, paired, rotated), to keep for the next start. */
  keep(room: string, key: string): void;
}

/** The plugin keeps every key the sidecar gives the app itself (room-keys.json, mode 0600). */
const pluginKeys: RoomKeys = {
  saved: (room) => invoke<string | null>("plugin:mobile-worship|saved_room_key", { room }),
  forget: async (room) => {
    await invoke<null>("plugin:mobile-worship|forget_room_key", { room });
  },
  keep: () => undefined,
};

const PREFIX = "mobile-worship:room-key:";

/**
 * A web peer's keys live in the page's local storage, which belongs to the page's origin:
 * in a Tauri mobile app the app's own (`tauri://localhost`, `http://tauri.localhost`), in a
 * browser the address the page came from. No storage (a private window): the device pairs
 * at every start.
 *
 * Kept per device the page joins through (`host:port`) and room: a link naming another
 * device (`#signal=`, maybe a stranger's) and a pairing there cannot replace the key of
 * the room this phone is in; it finds no key there and asks for a code.
 */
function webKeys(device: string): RoomKeys {
  const slot = (room: string) => `${PREFIX}${device}|${room}`;
  return {
    saved: (room) => {
      try {
        return Promise.resolve(localStorage.getItem(slot(room)));
      } catch {
        return Promise.resolve(null);
      }
    },
    forget: (room) => {
      try {
        localStorage.removeItem(slot(room));
      } catch {
        // nothing kept
      }
      return Promise.resolve();
    },
    keep: (room, key) => {
      try {
        localStorage.setItem(slot(room), key);
      } catch {
        // not kept: the next start pairs again
      }
    },
  };
}

/** The keys of the plugin, or of a web peer joining through `device` (`host:port`). */
export function roomKeys(mode: PeerMode, device = ""): RoomKeys {
  return mode === "plugin" ? pluginKeys : webKeys(device);
}
