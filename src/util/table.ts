/* Plain-text tables, kubectl-style: what every list command prints and `observe -o table` too. */

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
