/* Checking the shape of untrusted JSON against one zod schema, which gives both the check and
 * the type: a request of the wrong shape becomes one line naming the field (a 400), never a 500
 * from code that trusted its types. */
import type { z } from 'zod';
import { invalid } from '../errors.js';

/** `a.b[0].c` for a path into the value. */
function pathText(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
}

/** The value as the schema's type, or UserError('invalid') "WHAT: FIELD: problem" on the first wrong field. */
export function checkShape<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const where = issue.path.length ? `${pathText(issue.path)}: ` : '';
  throw invalid(`${what}: ${where}${issue.message.replace(/\s+/g, ' ')}`);
}
