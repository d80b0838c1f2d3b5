/* Every error the agent and the CLI raise on purpose, each with a stable `code` that callers
 * branch on (never on a message or a class name), modelled on undici's lib/core/errors.js:
 *   - UserError: the user's input is wrong; a one-line message that says what and how to fix it.
 *     The API maps its code to an HTTP status; the CLI prints the message.
 *   - StartupError: the agent cannot start here (privileges, kernel, build); one line, exit 1.
 *   - KernelError: a system call failed; its code is the errno name (ENOENT, E2BIG, ...).
 *   - ApiError / AgentUnreachable: the CLI's view of an agent that refused a request or is not there.
 * Anything else that escapes is a bug, and is printed with its stack. */
import os from 'node:os';

/** The base of every error raised on purpose: `code` is stable, the message is for people. */
export abstract class MembraneError extends Error {
  abstract readonly code: string;
}

export type UserErrorCode = 'invalid' | 'not-found' | 'conflict' | 'unavailable';

export class UserError extends MembraneError {
  override name = 'UserError';
  constructor(
    readonly code: UserErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export const invalid = (msg: string) => new UserError('invalid', msg);
export const notFound = (msg: string) => new UserError('not-found', msg);
export const conflict = (msg: string) => new UserError('conflict', msg);

/** A problem that stops the agent from starting; printed as one line. */
export class StartupError extends MembraneError {
  override name = 'StartupError';
  readonly code = 'startup';
}

const errnoNames = new Map<number, string>(Object.entries(os.constants.errno).map(([name, num]) => [num as number, name]));

/** A failed system call: `code` is its errno name so callers can branch on it. */
export class KernelError extends MembraneError {
  override name = 'KernelError';
  constructor(
    readonly op: string,
    readonly errnoValue: number,
  ) {
    super(`${op}: ${errnoNames.get(errnoValue) ?? 'errno ' + errnoValue}`);
  }
  get code(): string {
    return errnoNames.get(this.errnoValue) ?? String(this.errnoValue);
  }
}

/** The agent answered a request with an error: `code` is the agent's (a UserErrorCode, or internal). */
export class ApiError extends MembraneError {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The agent's socket does not answer (not running, another socket, or it went away mid-stream). */
export class AgentUnreachable extends MembraneError {
  override name = 'AgentUnreachable';
  readonly code = 'unreachable';
}

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
