/* The clock connection tracking runs on. The endpoint programs read the kernel's tick counter
 * (bpf_jiffies64(), inlined by the verifier into one load) instead of a clock helper, which cost
 * ~30 ns per packet here, and scale it to nanoseconds by the tick length the agent writes into
 * the datapath config. The agent reads that clock back (idle times, garbage collection) from
 * CLOCK_MONOTONIC, to which jiffies are locked: both come from the timekeeping core, and
 * /proc/timer_list shows them side by side. Where that is not possible the datapath falls back
 * to the coarse monotonic clock (nsPerJiffy 0). */
import fs from 'node:fs';
import zlib from 'node:zlib';

export interface DatapathClock {
  /** Tick length written to datapath_config.ns_per_jiffy; 0: the programs use the coarse monotonic clock. */
  readonly nsPerJiffy: number;
  /** The datapath clock at CLOCK_MONOTONIC `monoNs` (now by default), in nanoseconds. */
  nowNs(monoNs?: bigint): bigint;
}

const KNOWN_HZ = [100, 250, 300, 1000];

interface TickSample {
  monoNs: bigint;
  jiffies: bigint;
}

/** "now at N nsecs" and the first "jiffies: N" of one read of /proc/timer_list. */
function sampleTimerList(): TickSample | undefined {
  let text: string;
  try {
    text = fs.readFileSync('/proc/timer_list', 'utf8');
  } catch {
    return undefined;
  }
  const now = /^now at (\d+) nsecs$/m.exec(text);
  const jiffies = /^jiffies: (\d+)$/m.exec(text);
  return now && jiffies ? { monoNs: BigInt(now[1]!), jiffies: BigInt(jiffies[1]!) } : undefined;
}

/** CONFIG_HZ from the kernel's own config, when it publishes one. */
function configuredHz(): number | undefined {
  try {
    const config = zlib.gunzipSync(fs.readFileSync('/proc/config.gz')).toString('utf8');
    const hz = Number(/^CONFIG_HZ=(\d+)$/m.exec(config)?.[1]);
    return KNOWN_HZ.includes(hz) ? hz : undefined;
  } catch {
    return undefined;
  }
}

/** HZ from two samples 60 ms apart (a tick either way cannot move it to a neighbouring value). */
function measuredHz(first: TickSample): number | undefined {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60);
  const second = sampleTimerList();
  if (!second || second.monoNs <= first.monoNs) return undefined;
  const hz = (Number(second.jiffies - first.jiffies) * 1e9) / Number(second.monoNs - first.monoNs);
  const nearest = KNOWN_HZ.reduce((a, b) => (Math.abs(b - hz) < Math.abs(a - hz) ? b : a));
  return Math.abs(nearest - hz) / nearest < 0.1 ? nearest : undefined;
}

const monotonic: DatapathClock = { nsPerJiffy: 0, nowNs: (monoNs = process.hrtime.bigint()) => monoNs };

export function probeDatapathClock(): DatapathClock {
  const anchor = sampleTimerList();
  if (!anchor) return monotonic;
  const hz = configuredHz() ?? measuredHz(anchor);
  if (!hz) return monotonic;
  const nsPerJiffy = BigInt(Math.round(1e9 / hz));
  return {
    nsPerJiffy: Number(nsPerJiffy),
    // Ticks since the anchor, counted in whole ticks as the kernel does.
    nowNs: (monoNs = process.hrtime.bigint()) => (anchor.jiffies + (monoNs - anchor.monoNs) / nsPerJiffy) * nsPerJiffy,
  };
}
