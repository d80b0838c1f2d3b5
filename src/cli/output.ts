/* Output of read commands: kubectl-like tables by default, or the API objects as JSON or YAML. */
import YAML from 'yaml';
import { invalid } from '../errors.js';

export type OutputFormat = 'table' | 'json' | 'yaml';

export function parseFormat(text: string | undefined): OutputFormat {
  const f = (text ?? 'table').toLowerCase();
  if (f !== 'table' && f !== 'json' && f !== 'yaml') throw invalid(`-o ${text}: choose table, json or yaml`);
  return f;
}

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | string[];
}

/** Columns separated by three spaces; a cell that is a list spreads over several lines. */
export function renderTable<T>(rows: T[], columns: Column<T>[]): string {
  const cells = rows.map((r) => columns.map((c) => {
    const v = c.value(r);
    return Array.isArray(v) ? (v.length ? v : ['']) : [String(v)];
  }));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => Math.max(...row[i]!.map((s) => s.length)))));
  const line = (parts: string[]) => parts.map((p, i) => (i === parts.length - 1 ? p : p.padEnd(widths[i]!))).join('   ').trimEnd();
  const out = [line(columns.map((c) => c.header))];
  for (const row of cells) {
    const height = Math.max(...row.map((c) => c.length));
    for (let h = 0; h < height; h++) out.push(line(row.map((c) => c[h] ?? '')));
  }
  return out.join('\n');
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
