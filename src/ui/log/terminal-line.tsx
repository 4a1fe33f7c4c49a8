import { memo } from "react";
import { type TextSegment, terminalSegments } from "../../lines/terminal-text.js";

/**
 * One line as a terminal shows it. Text only ever becomes React text nodes,
 * never markup: a line holding `<script>` or `<img onerror=…>` shows those
 * characters and nothing else.
 */

/** xterm's 256-colour palette beyond the 16 named colours (which the stylesheet defines per colour scheme). */
function paletteColor(index: number): string {
  if (index >= 232) {
    const v = 8 + (index - 232) * 10;
    return `rgb(${v}, ${v}, ${v})`;
  }
  const i = index - 16;
  const level = (n: number) => (n === 0 ? 0 : 55 + n * 40);
  return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
}

function colorOf(cls: string | null, rgb: string | null): { className?: string; color?: string } {
  if (!cls) return {};
  if (cls === "ansi-truecolor" && rgb) return { color: `rgb(${rgb})` };
  const palette = /^ansi-palette-(\d+)$/.exec(cls);
  if (palette) {
    const index = Number(palette[1]);
    // Anser names palette entries 0-15 after their colours; beyond, the value is computed.
    return index >= 16 ? { color: paletteColor(index) } : {};
  }
  return { className: cls };
}

function Segment({ segment }: { segment: TextSegment }) {
  const fg = colorOf(segment.fg, segment.fgRgb);
  const bg = colorOf(segment.bg, segment.bgRgb);
  const classes = [fg.className, bg.className && `${bg.className}-bg`, ...segment.decorations.map((d) => `ansi-${d}`)].filter(Boolean);
  const style = fg.color || bg.color ? { ...(fg.color && { color: fg.color }), ...(bg.color && { backgroundColor: bg.color }) } : undefined;
  if (classes.length === 0 && !style) return <>{segment.text}</>;
  return (
    <span className={classes.join(" ")} style={style}>
      {segment.text}
    </span>
  );
}

export const TerminalLine = memo(function TerminalLine({ line }: { line: string }) {
  const segments = terminalSegments(line);
  return (
    <>
      {segments.map((segment, i) => (
        // Segments of one line never reorder: the index is their identity.
        // biome-ignore lint/suspicious/noArrayIndexKey: see above
        <Segment key={i} segment={segment} />
      ))}
    </>
  );
});
