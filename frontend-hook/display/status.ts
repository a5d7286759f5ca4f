// The display page's discreet notes beside its connection line (docs/api.md, "Web
// peers"): whether the screen is kept awake, and whether its channels go through
// the leader's relay. Pure, tested in test/cue.test.ts.

/** The screen wake lock, as the page last knew it. */
export type WakeState = "pending" | "held" | "unavailable" | "refused" | "released";

export const WAKE_NOTES: Readonly<Record<WakeState, string | null>> = {
  pending: null,
  held: "Screen kept awake",
  // http pages are not secure contexts: most browsers give them no wake lock
  unavailable: "Screen may sleep: this page cannot keep it awake",
  refused: "Screen may sleep: the browser would not keep it awake",
  released: "Screen may sleep until this page is shown again",
};

export function wakeNote(state: WakeState): string | null {
  return WAKE_NOTES[state];
}

/** The note about the path of the page's channels, or null when they are direct. */
export function relayNote(relayed: boolean, hasWebRTC: boolean): string | null {
  if (!hasWebRTC) return "Via the booth's relay (this browser cannot link directly)";
  return relayed ? "Via the booth's relay" : null;
}
