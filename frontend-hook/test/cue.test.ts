import { describe, expect, it } from "vitest";

import { MAX_LINES, bodyText, cueOf, fitFontSize, lineText, plainText, readableLines, type Cue } from "../display/cue";
import { relayNote, wakeNote } from "../display/status";

/** A cue as the title and its lines' texts ("label: text"). */
function read(cue: Cue): { title: string | null; lines: string[] } {
  return { title: cue.title, lines: cue.lines.map(lineText) };
}

/** Nothing of JSON's syntax: what a projector must never show. */
function noJson(text: string): void {
  expect(text).not.toMatch(/[{}"[\]]/);
}

describe("the display page's payload convention", () => {
  it("shows a string as itself, line breaks kept", () => {
    expect(read(cueOf("Verse 1"))).toEqual({ title: null, lines: ["Verse 1"] });
    expect(bodyText(cueOf("Amazing grace\nhow sweet the sound"))).toBe("Amazing grace\nhow sweet the sound");
    expect(read(cueOf(""))).toEqual({ title: null, lines: [""] });
  });

  it("shows title, text and lines: the title above, the text, then one line each", () => {
    expect(read(cueOf({ title: "Amazing Grace", lines: ["Amazing grace, how sweet the sound", "That saved a wretch like me"] }))).toEqual({
      title: "Amazing Grace",
      lines: ["Amazing grace, how sweet the sound", "That saved a wretch like me"],
    });
    expect(read(cueOf({ text: "Welcome" }))).toEqual({ title: null, lines: ["Welcome"] });
    expect(read(cueOf({ title: "Notices", text: "Tea after the service", lines: ["Hall A"] }))).toEqual({
      title: "Notices",
      lines: ["Tea after the service", "Hall A"],
    });
    expect(read(cueOf({ title: "Only a title" }))).toEqual({ title: "Only a title", lines: [] });
  });

  it("leaves out the other keys of a conventional cue (they are for apps)", () => {
    expect(read(cueOf({ text: "Verse 2", slide: 7, song: { id: 12 } }))).toEqual({ title: null, lines: ["Verse 2"] });
  });

  it("shows a line that is not a string readably", () => {
    expect(read(cueOf({ lines: ["one", 2, true, null, { who: "all" }] })).lines).toEqual(["one", "2", "yes", "—", "who: all"]);
  });

  it("recognises the fields only with their types: a number title is just a value", () => {
    expect(read(cueOf({ title: 3, text: ["a"] }))).toEqual({ title: null, lines: ["title: 3", "text: a"] });
  });

  it("shows anything else as key: value lines, never with braces or quotes", () => {
    expect(cueOf({ slide: 7, note: "big" }).lines).toEqual([
      { label: "slide", text: "7" },
      { label: "note", text: "big" },
    ]);
    const cue = read(cueOf({ slide: 7 }));
    expect(cue).toEqual({ title: null, lines: ["slide: 7"] });
    const nested = read(cueOf({ song: { name: "Be Thou My Vision", verse: 2 }, key: "D", tags: ["hymn", "irish"], live: false, next: null }));
    expect(nested.lines).toEqual([
      "song name: Be Thou My Vision",
      "song verse: 2",
      "key: D",
      "tags: hymn, irish",
      "live: no",
      "next: —",
    ]);
    for (const line of nested.lines) noJson(line);
  });

  it("shows numbers, booleans and lists readably", () => {
    expect(read(cueOf(42)).lines).toEqual(["42"]);
    expect(read(cueOf(true)).lines).toEqual(["yes"]);
    expect(read(cueOf(["Kyrie", "Gloria"])).lines).toEqual(["Kyrie", "Gloria"]);
    expect(read(cueOf([{ name: "Kyrie" }, { name: "Gloria" }])).lines).toEqual(["name: Kyrie", "name: Gloria"]);
    expect(read(cueOf({ items: [{ name: "Kyrie" }, { name: "Gloria" }] })).lines).toEqual(["items 1 name: Kyrie", "items 2 name: Gloria"]);
    expect(read(cueOf({ empty: {}, none: [] })).lines).toEqual(["empty: —", "none: —"]);
    expect(read(cueOf({})).lines).toEqual([]);
    expect(read(cueOf([])).lines).toEqual([]);
  });

  it("shows nothing for null", () => {
    expect(read(cueOf(null))).toEqual({ title: null, lines: [] });
  });

  it("bounds what it makes of a huge or deep payload", () => {
    const many = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${String(i)}`, i]));
    const lines = readableLines(many).map(lineText);
    expect(lines).toHaveLength(MAX_LINES + 1);
    expect(lines.at(-1)).toBe("…");
    let deep: unknown = "bottom";
    for (let i = 0; i < 50; i++) deep = { d: deep };
    const [line] = readableLines(deep).map(lineText);
    expect(line).toMatch(/^d d d .*: …$/);
    expect(read(cueOf({ lines: Array.from({ length: 500 }, (_, i) => String(i)) })).lines).toHaveLength(MAX_LINES);
  });

  it("gives a retained value as plain text: a string exactly, anything else readably", () => {
    expect(plainText("Verse 2")).toBe("Verse 2");
    expect(plainText({ song: "Abide with me", verse: 3 })).toBe("song: Abide with me\nverse: 3");
    expect(plainText(5)).toBe("5");
  });
});

describe("fitting a cue to its screen", () => {
  it("takes the largest size that fits, within a pixel, in half pixels", () => {
    const size = fitFontSize((px) => px <= 73.3, 12, 200);
    expect(size).toBeLessThanOrEqual(73.3);
    expect(size).toBeGreaterThan(72.3);
    expect(size * 2).toBe(Math.round(size * 2));
    expect(fitFontSize((px) => px <= 150, 12, 120)).toBe(120); // everything fits: the cap
    expect(fitFontSize(() => false, 12, 120)).toBe(12); // nothing fits: the smallest
    expect(fitFontSize(() => true, 12, 10)).toBe(12);
  });
});

describe("the display page's notes", () => {
  it("says whether the screen is kept awake", () => {
    expect(wakeNote("pending")).toBeNull();
    expect(wakeNote("held")).toBe("Screen kept awake");
    expect(wakeNote("unavailable")).toMatch(/may sleep/);
    expect(wakeNote("released")).toMatch(/shown again/);
  });

  it("says discreetly when the channels go through the booth's relay", () => {
    expect(relayNote(false, true)).toBeNull();
    expect(relayNote(true, true)).toBe("Via the booth's relay");
    expect(relayNote(false, false)).toMatch(/^Via the booth's relay \(this browser cannot link directly\)$/);
  });
});
