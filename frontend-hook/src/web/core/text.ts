/** Measuring text the way the sidecar does (Python counts code points and UTF-8 bytes). */

const utf8 = new TextEncoder();

/** Bytes of `text` in UTF-8, as the wire carries it. */
export function byteSize(text: string): number {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(text) ? text.length : utf8.encode(text).length;
}

/** Characters of `text` as Python's len() counts them: code points, not UTF-16 units. */
export function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n += 1; // eslint-disable-line @typescript-eslint/no-unused-vars
  return n;
}
