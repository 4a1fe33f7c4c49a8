import Anser from "anser";

/**
 * What a terminal would show of a captured line: colours and bold/underline
 * (SGR) kept as styled segments, every other control sequence removed. The
 * browser renders these segments and the leader's search matches against the
 * same visible text, so a search finds what a reader sees.
 *
 * Anser parses CSI sequences (it applies SGR and drops the rest); it leaves
 * OSC strings (titles, hyperlinks), other escapes and bare control characters
 * in the text, so those are removed before and after it.
 */

export interface TextSegment {
  text: string;
  /** Anser colour class (`ansi-red`, `ansi-bright-blue`, `ansi-palette-208`, `ansi-truecolor`) or null. */
  fg: string | null;
  bg: string | null;
  /** `r, g, b` when `fg`/`bg` is `ansi-truecolor`. */
  fgRgb: string | null;
  bgRgb: string | null;
  /** SGR attributes: `bold`, `dim`, `italic`, `underline`, `blink`, `reverse`, `hidden`, `strikethrough`. */
  decorations: readonly string[];
}

// OSC, DCS, SOS, PM and APC strings, up to their terminator (BEL or ST) or the line's end.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is what this module is for
const ESCAPE_STRING = /\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\|$)/g;
// Escapes that are not CSI: charset designations (ESC ( B) and single-character ones (ESC M, ESC 7).
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is what this module is for
const OTHER_ESCAPE = /\x1b(?:[ -/]+[0-~]|[0-Z\\^-~])/g;
// What remains: C0 controls but tab, DEL, C1 controls, and a stray ESC.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is what this module is for
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is what this module is for
const HAS_CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/;

function withoutNonCsi(line: string): string {
  if (!line.includes("\x1b")) return line;
  return line.replace(ESCAPE_STRING, "").replace(OTHER_ESCAPE, "");
}

function withoutControls(text: string): string {
  return text.replace(CONTROL, "");
}

/** The line as styled segments of visible text. */
export function terminalSegments(line: string): TextSegment[] {
  if (!HAS_CONTROL.test(line)) {
    return line === "" ? [] : [{ text: line, fg: null, bg: null, fgRgb: null, bgRgb: null, decorations: [] }];
  }
  const segments: TextSegment[] = [];
  for (const chunk of Anser.ansiToJson(withoutNonCsi(line), { use_classes: true, remove_empty: true })) {
    const text = withoutControls(chunk.content);
    if (text === "") continue;
    segments.push({
      text,
      fg: chunk.fg || null,
      bg: chunk.bg || null,
      fgRgb: chunk.fg_truecolor || null,
      bgRgb: chunk.bg_truecolor || null,
      decorations: chunk.decorations ?? [],
    });
  }
  return segments;
}

/** The line's visible text: what remains after every control sequence is removed. */
export function visibleText(line: string): string {
  if (!HAS_CONTROL.test(line)) return line;
  return withoutControls(Anser.ansiToText(withoutNonCsi(line)));
}
