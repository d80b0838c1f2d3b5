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
