/* Colours on a terminal: verdicts and errors stand out when a person reads them, and nothing but
 * plain text reaches a pipe, a file or a terminal whose user set NO_COLOR (no-color.org). */

const CODES = { red: [31, 39], green: [32, 39], yellow: [33, 39], bold: [1, 22], dim: [2, 22] } as const;
export type Style = keyof typeof CODES;

/** Whether output to `stream` should be coloured: a TTY, and NO_COLOR unset or empty. */
export function colourWanted(stream: { isTTY?: boolean }): boolean {
  return Boolean(stream.isTTY) && !process.env.NO_COLOR;
}

/** `text` in `style` when `enabled`, else as it is. */
export function styled(text: string, style: Style, enabled: boolean): string {
  if (!enabled) return text;
  const [on, off] = CODES[style];
  return `\x1b[${on}m${text}\x1b[${off}m`;
}
