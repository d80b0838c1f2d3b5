/* Time as flows carry it: RFC 3339 text with up to nanoseconds, compared exactly as nanoseconds
 * since the epoch in a BigInt (a Number loses the last digits). The one parser and formatter of
 * timestamps: the flow decoder, the filters, the printers and the proto mapping all use these.
 * Dates are proleptic Gregorian, years 0001-9999 (google.protobuf.Timestamp's range). */

export const NS_PER_SECOND = 1_000_000_000n;
const NS_PER_DAY = 86_400n * NS_PER_SECOND;

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(z: number): { y: number; m: number; d: number } {
  const zz = z + 719468;
  const era = Math.floor(zz / 146097);
  const doe = zz - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return { y: era * 400 + yoe + (m <= 2 ? 1 : 0), m, d };
}

const daysInMonth = (y: number, m: number) =>
  m === 2 ? (y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31;

export interface Civil {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
  frac: string; // up to 9 digits
  offsetMinutes: number;
}

/** Nanoseconds since the epoch of a validated civil time, or undefined when a field is out of range. */
export function civilToNs(c: Civil): bigint | undefined {
  if (c.mo < 1 || c.mo > 12 || c.d < 1 || c.d > daysInMonth(c.y, c.mo)) return undefined;
  if (c.h > 23 || c.mi > 59 || c.s > 59) return undefined;
  const days = BigInt(daysFromCivil(c.y, c.mo, c.d));
  const secs = BigInt(c.h * 3600 + c.mi * 60 + c.s - c.offsetMinutes * 60);
  const nanos = BigInt((c.frac + '000000000').slice(0, 9));
  return days * NS_PER_DAY + secs * NS_PER_SECOND + nanos;
}

/** Minutes east of UTC of `Z`, `±hh:mm` or `±hhmm` (none: UTC); undefined when malformed. */
export function parseZoneOffset(z: string | undefined): number | undefined {
  if (z === undefined || z === 'Z' || z === 'z') return 0;
  const m = /^([+-])(\d{2}):(\d{2})$/.exec(z) ?? /^([+-])(\d{2})(\d{2})$/.exec(z);
  if (!m) return undefined;
  const h = Number(m[2]);
  const mi = Number(m[3]);
  if (h > 23 || mi > 59) return undefined;
  return (m[1] === '-' ? -1 : 1) * (h * 60 + mi);
}

const RFC3339_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;

/** Parses an RFC 3339 timestamp (fraction of up to 9 digits, `Z` or `±hh:mm`) to nanoseconds since the epoch; undefined when it is not one. */
export function parseTimestampNs(text: string): bigint | undefined {
  const m = RFC3339_RE.exec(text);
  if (!m) return undefined;
  const offsetMinutes = parseZoneOffset(m[8]);
  if (offsetMinutes === undefined) return undefined;
  return civilToNs({
    y: Number(m[1]),
    mo: Number(m[2]),
    d: Number(m[3]),
    h: Number(m[4]),
    mi: Number(m[5]),
    s: Number(m[6]),
    frac: m[7] ?? '',
    offsetMinutes,
  });
}

/** UTC parts of a nanosecond timestamp. */
export function utcParts(ns: bigint): { y: number; m: number; d: number; h: number; mi: number; s: number; nanos: number } {
  let days = ns / NS_PER_DAY;
  let rest = ns % NS_PER_DAY;
  if (rest < 0n) {
    rest += NS_PER_DAY;
    days -= 1n;
  }
  const { y, m, d } = civilFromDays(Number(days));
  const secOfDay = Number(rest / NS_PER_SECOND);
  return { y, m, d, h: Math.floor(secOfDay / 3600), mi: Math.floor(secOfDay / 60) % 60, s: secOfDay % 60, nanos: Number(rest % NS_PER_SECOND) };
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** RFC 3339 in UTC with a fraction of `digits` digits (default 9: nanoseconds; 0: none). */
export function formatTimestampNs(ns: bigint, digits = 9): string {
  const p = utcParts(ns);
  const frac = digits > 0 ? '.' + pad(p.nanos, 9).slice(0, digits) : '';
  return `${pad(p.y, 4)}-${pad(p.m)}-${pad(p.d)}T${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}${frac}Z`;
}
