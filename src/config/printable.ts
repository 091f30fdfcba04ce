/**
 * Theory of operation: strings that come from guests (DHCP host names, and
 * anything else a guest can set) or from other processes are data, never
 * instructions to the user's terminal. Before such text reaches a terminal
 * or a log, `printable` writes every character a terminal could act on as
 * an escape: C0 controls (ESC, BEL, CR, LF, TAB, …) and DEL as `\xHH`, C1
 * controls (U+0080–U+009F: CSI U+009B acts as ESC [ on some terminals) as
 * `\xHH` too, and the Unicode line separators and bidirectional controls
 * (U+2028/2029, U+200E/200F, U+202A–202E, U+2066–2069: reordering text on
 * screen, "Trojan Source") as `\u{HHHH}`; so one record stays one line and
 * looks like what it is. JSON output goes through `toJson`: JSON.stringify
 * already escapes C0 controls, `toJson` also escapes DEL, C1 and those
 * Unicode controls (as \uHHHH, still valid JSON decoding to the same text).
 */

/** Characters a terminal may act on: C0 (all), DEL, C1, line separators, bidi controls. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** The same, minus C0 (which JSON.stringify escapes itself). */
const JSON_CONTROL = /[\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Escapes what a terminal could act on, for text output and logs.
 * @param text any string, e.g. a DHCP host name a guest sent
 * @returns the same text, each control written as \xHH or \u{HHHH}
 */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
  });
}

/**
 * JSON.stringify whose output carries no raw control character either.
 * @param value what to encode
 * @param space indentation, as for JSON.stringify
 */
export function toJson(value: unknown, space?: number): string {
  return JSON.stringify(value, null, space).replace(JSON_CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
