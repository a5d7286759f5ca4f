// The room keys this browser keeps, one per room, in its local storage (which
// belongs to the page's origin: the device and port it was served from). A key is
// kept after pairing and after a rotation, and forgotten on "Forget this room" or
// when the room no longer takes it. Storage may be unavailable (a private window,
// a locked-down TV): the page then pairs on every visit.
const PREFIX = "mobile-worship:room-key:";

export function readRoomKey(room: string): string | null {
  try {
    return localStorage.getItem(PREFIX + room);
  } catch {
    return null;
  }
}

export function storeRoomKey(room: string, key: string): void {
  try {
    localStorage.setItem(PREFIX + room, key);
  } catch {
    // not kept: the next visit pairs again
  }
}

export function forgetRoomKey(room: string): void {
  try {
    localStorage.removeItem(PREFIX + room);
  } catch {
    // nothing kept
  }
}
