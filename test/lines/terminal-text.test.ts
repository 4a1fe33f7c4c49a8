import { describe, expect, test } from "vitest";
import { terminalSegments, visibleText } from "../../src/lines/terminal-text.js";

describe("terminal text", () => {
  test("SGR colours and attributes become styled segments", () => {
    expect(terminalSegments("\x1b[31mred\x1b[0m plain \x1b[1;4mstrong\x1b[0m")).toEqual([
      { text: "red", fg: "ansi-red", bg: null, fgRgb: null, bgRgb: null, decorations: [] },
      { text: " plain ", fg: null, bg: null, fgRgb: null, bgRgb: null, decorations: [] },
      { text: "strong", fg: null, bg: null, fgRgb: null, bgRgb: null, decorations: ["bold", "underline"] },
    ]);
    expect(terminalSegments("\x1b[38;5;208mo\x1b[38;2;1;2;3mt")).toMatchObject([
      { text: "o", fg: "ansi-palette-208" },
      { text: "t", fg: "ansi-truecolor", fgRgb: "1, 2, 3" },
    ]);
  });

  test("every other control sequence is removed", () => {
    const cases: Array<[string, string]> = [
      ["\x1b[2K\x1b[1Gcleared", "cleared"],
      ["\x1b[?25lhidden cursor\x1b[?25h", "hidden cursor"],
      ["\x1b]0;title\x07after title", "after title"],
      ["\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\", "link"],
      ["bell\x07 back\x08space\x7f del", "bell backspace del"],
      ["\x1bMreverse index \x1b(Bcharset \x1b7saved", "reverse index charset saved"],
      ["tabs\tstay", "tabs\tstay"],
      ["unterminated \x1b]0;title", "unterminated "],
    ];
    for (const [line, visible] of cases) {
      expect(visibleText(line), JSON.stringify(line)).toBe(visible);
      expect(
        terminalSegments(line)
          .map((s) => s.text)
          .join(""),
        JSON.stringify(line),
      ).toBe(visible);
    }
  });

  test("plain text and markup pass through untouched", () => {
    expect(visibleText(`<script>alert("x")</script>`)).toBe(`<script>alert("x")</script>`);
    expect(terminalSegments("")).toEqual([]);
  });
});
