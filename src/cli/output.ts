/* Output of read commands: kubectl-like tables by default, or the API objects as JSON or YAML. */
import YAML from 'yaml';
import { invalid } from '../errors.js';
import { renderTable, type Column } from '../util/table.js';

export type { Column };

export type OutputFormat = 'table' | 'json' | 'yaml';

export function parseFormat(text: string | undefined): OutputFormat {
  const f = (text ?? 'table').toLowerCase();
  if (f !== 'table' && f !== 'json' && f !== 'yaml') throw invalid(`-o ${text}: choose table, json or yaml`);
  return f;
}

export function print<T>(data: T | T[], format: OutputFormat, columns: Column<T>[]): void {
  if (format === 'json') {
    process.stdout.write(JSON.stringify(data, null, 2) + '\n');
  } else if (format === 'yaml') {
    process.stdout.write(YAML.stringify(data));
  } else {
    process.stdout.write(renderTable(Array.isArray(data) ? data : [data], columns) + '\n');
  }
}

/** Key: value lines for a single object (status). */
export function renderKeyValues(pairs: [string, string][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${(k + ':').padEnd(w)} ${v}`).join('\n');
}
