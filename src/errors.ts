/* Errors caused by the user's input carry a stable code and a one-line message that says what
 * is wrong and how to fix it. The API maps codes to HTTP statuses; the CLI prints the message. */
export type UserErrorCode = 'invalid' | 'not-found' | 'conflict' | 'unavailable';

export class UserError extends Error {
  constructor(
    readonly code: UserErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export const invalid = (msg: string) => new UserError('invalid', msg);
export const notFound = (msg: string) => new UserError('not-found', msg);
export const conflict = (msg: string) => new UserError('conflict', msg);

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A user's value inside a message: quoted, escaped onto one line, clipped so a huge value
 * cannot flood the terminal. Messages must stay one line whatever the input held. */
export function quoted(value: unknown, max = 80): string {
  // JSON escapes control characters but not the Unicode line and paragraph separators.
  const text = (JSON.stringify(value) ?? String(value)).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}
