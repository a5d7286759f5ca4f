// What the display page shows of a control message's payload (docs/api.md, "Web
// peers", "What a display page shows"): pure, so it is tested without a browser
// (test/cue.test.ts).
//
// The convention:
//   - a string is the text itself (its line breaks kept);
//   - an object with any of `title` (a string, shown above, smaller), `text` (a
//     string) and `lines` (a list, one line each) is shown as those fields; its
//     other keys are for apps and are not shown;
//   - anything else (a number, a list, another object) is shown readably: one
//     "key: value" line per value, nested keys joined by spaces, lists of plain
//     values joined by commas, yes / no for booleans; never JSON's braces or quotes.
// `null` shows nothing.

/** One line of a cue's body: a text, and for a value of the readable form the keys
 * above it (shown lighter, before a colon). */
export interface CueLine {
  label: string | null;
  text: string;
}

/** What the page lays out: an optional title above the body's lines. */
export interface Cue {
  title: string | null;
  /** The body, one entry per line (a line may still wrap on screen). */
  lines: CueLine[];
}

/** At most this many lines of a readable form (a 64 KiB payload could make thousands). */
export const MAX_LINES = 60;
const MAX_DEPTH = 8;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A plain value as a person reads it. */
function scalar(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  return "";
}

function isScalar(v: unknown): boolean {
  return v === null || (typeof v !== "object" && typeof v !== "function");
}

/** The readable lines of any JSON value: `prefix` is the path of keys above it. */
function readable(v: unknown, prefix: string, depth: number, out: CueLine[]): void {
  if (out.length >= MAX_LINES) return;
  const label = (text: string): CueLine => ({ label: prefix || null, text });
  if (isScalar(v)) {
    const text = scalar(v);
    if (prefix || text) out.push(label(text));
    return;
  }
  if (depth >= MAX_DEPTH) {
    out.push(label("…"));
    return;
  }
  if (Array.isArray(v)) {
    if (v.length === 0) {
      if (prefix) out.push(label("—"));
      return;
    }
    if (v.every(isScalar)) {
      if (prefix) out.push(label(v.map(scalar).join(", ")));
      else for (const item of v) readable(item, "", depth + 1, out);
      return;
    }
    v.forEach((item, i) => {
      readable(item, prefix ? `${prefix} ${String(i + 1)}` : "", depth + 1, out);
    });
    return;
  }
  if (isRecord(v)) {
    const entries = Object.entries(v);
    if (entries.length === 0) {
      if (prefix) out.push(label("—"));
      return;
    }
    for (const [key, value] of entries) readable(value, prefix ? `${prefix} ${key}` : key, depth + 1, out);
  }
}

/** The readable form of any value as lines (the convention's "anything else"). */
export function readableLines(value: unknown): CueLine[] {
  const out: CueLine[] = [];
  readable(value, "", 0, out);
  if (out.length >= MAX_LINES) {
    out.length = MAX_LINES;
    out.push({ label: null, text: "…" });
  }
  return out;
}

/** A line as one text: "label: text". */
export function lineText(line: CueLine): string {
  return line.label === null ? line.text : `${line.label}: ${line.text}`;
}

/** Any value as one plain text (a retained value, say): a string is itself. */
export function plainText(value: unknown): string {
  if (typeof value === "string") return value;
  return readableLines(value).map(lineText).join("\n");
}

const plain = (text: string): CueLine => ({ label: null, text });

/** What the page shows of a payload. */
export function cueOf(payload: unknown): Cue {
  if (payload === null || payload === undefined) return { title: null, lines: [] };
  if (typeof payload === "string") return { title: null, lines: [plain(payload)] };
  if (isRecord(payload)) {
    const { title, text, lines } = payload;
    const hasTitle = typeof title === "string";
    const hasText = typeof text === "string";
    const hasLines = Array.isArray(lines);
    if (hasTitle || hasText || hasLines) {
      const body: CueLine[] = [];
      if (hasText) body.push(plain(text));
      if (hasLines) for (const line of lines.slice(0, MAX_LINES)) body.push(plain(plainText(line)));
      return { title: hasTitle && title !== "" ? title : null, lines: body };
    }
  }
  return { title: null, lines: readableLines(payload) };
}

/** The body of a cue as one text, line breaks between its lines. */
export function bodyText(cue: Cue): string {
  return cue.lines.map(lineText).join("\n");
}

/**
 * The largest font size in [lo, hi] (pixels, within `precision`, rounded down to a
 * half pixel) at which `fits` holds,
 * by bisection (`fits` is assumed to hold for every size below one that fits); `lo`
 * when none does.
 */
export function fitFontSize(fits: (px: number) => boolean, lo: number, hi: number, precision = 0.5): number {
  if (hi <= lo) return lo;
  if (fits(hi)) return hi;
  let good = lo;
  let bad = hi;
  while (bad - good > precision) {
    const mid = (good + bad) / 2;
    if (fits(mid)) good = mid;
    else bad = mid;
  }
  return Math.max(lo, Math.floor(good * 2) / 2);
}
