/* --since and --until as Hubble reads them: a duration in the past or an absolute time. */
import { invalid } from '../errors.js';
import { civilToNs, formatTimestampNs, NS_PER_SECOND, parseZoneOffset } from '../util/time.js';

const DURATION_UNITS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5
  μs: 1_000n, // U+03BC
  ms: 1_000_000n,
  s: NS_PER_SECOND,
  m: 60n * NS_PER_SECOND,
  h: 3600n * NS_PER_SECOND,
};

/** Go's time.ParseDuration without a sign ("3s", "1h43m", "1.5h", "300ms", "0"), in nanoseconds. */
function parseDurationNs(text: string): bigint | undefined {
  if (text === '0') return 0n;
  if (text === '') return undefined;
  const re = /(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0n;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return undefined;
    const intPart = m[1] ?? '';
    const fracPart = m[2] ?? '';
    if (intPart === '' && fracPart === '') return undefined;
    const unit = DURATION_UNITS[m[3]!]!;
    total += BigInt(intPart || '0') * unit;
    if (fracPart) total += (BigInt(fracPart) * unit) / 10n ** BigInt(fracPart.length);
    pos = re.lastIndex;
  }
  return total;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function parseAbsoluteNs(text: string): bigint | undefined {
  const civil = (y: string, mo: string, d: string, h = '0', mi = '0', s = '0', frac = '', zone?: string) => {
    const offsetMinutes = parseZoneOffset(zone);
    if (offsetMinutes === undefined) return undefined;
    return civilToNs({ y: +y, mo: +mo, d: +d, h: +h, mi: +mi, s: +s, frac, offsetMinutes });
  };
  let m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (m) return civil(m[1]!, m[2]!, m[3]!);
  // Hubble's YearMonthDayHour requires a zone ("2019-06-30T18Z")
  m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})(Z|[+-]\d{2}:\d{2})$/.exec(text);
  if (m) return civil(m[1]!, m[2]!, m[3]!, m[4]!, '0', '0', '', m[5]);
  m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(Z|[+-]\d{2}:\d{2})?$/.exec(text);
  if (m) return civil(m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, '0', '', m[6]);
  m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?$/.exec(text);
  if (m) return civil(m[1]!, m[2]!, m[3]!, m[4]!, m[5]!, m[6]!, m[7] ?? '', m[8]);
  // RFC 1123 with a numeric zone, as Hubble accepts: "Mon, 02 Jan 2006 15:04:05 -0700"
  m = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})$/.exec(text);
  if (m) {
    const mo = MONTHS.indexOf(m[2]!) + 1;
    if (mo === 0) return undefined;
    return civil(m[3]!, String(mo), m[1]!, m[4]!, m[5]!, m[6]!, '', m[7]);
  }
  return undefined;
}

/**
 * Parses a --since/--until value like Hubble: a duration in the past (Go syntax: `3s`, `4m`,
 * `1h43m`, `1.5h`, `300ms`) or an absolute time (`2024-11-21`, `2024-11-21T20:52Z`,
 * `2024-11-21T20:52:01`, RFC 3339 with up to nanoseconds, RFC 1123 with a numeric zone). Unlike
 * Hubble, a time of day without a zone is accepted and read as UTC. Returns RFC 3339 in UTC with
 * nine fraction digits.
 */
export function parseTimeArg(text: string, now: Date): string {
  const t = text.trim();
  const d = parseDurationNs(t);
  const nowMs = now.getTime();
  const ns = d !== undefined ? (Number.isNaN(nowMs) ? undefined : BigInt(nowMs) * 1_000_000n - d) : parseAbsoluteNs(t);
  if (ns === undefined) {
    throw invalid(`time "${text}" is not valid: give a duration like 3s, 4m or 1h43m, or a time like 2024-11-21, 2024-11-21T20:52:01 or 2024-11-21T20:52:01.5+02:00`);
  }
  return formatTimestampNs(ns);
}
