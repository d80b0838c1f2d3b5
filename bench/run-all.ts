/* `make bench`: runs every benchmark (each builds and removes its own namespaces), then prints
 * one table of what was measured in this run — ratios against the baseline measured alongside,
 * medians with min–max — with each goal and whether it is met, and records it in
 * bench/RESULTS.md (date, kernel, CPU, commands).
 * Usage: node --import tsx bench/run-all.ts [--quick] */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { formatNumber, ratioLine, TABLE_HEADER, valueLine, type RatioRow } from './stats.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mbbench-'));

const BENCHES = {
  datapath: args.quick ? ['--quick'] : ['--rounds', '3', '--seconds', '2'],
  endpoints: args.quick ? ['--latency', '5', '--cli', '1', '--scale', '20', '--settle-seconds', '0'] : ['--latency', '200', '--cli', '20', '--scale', '1000', '--settle-seconds', '10'],
  flows: args.quick ? ['--rounds', '1', '--latency', '5'] : ['--rounds', '4', '--latency', '100'],
  services: args.quick ? ['--quick'] : ['--rounds', '4', '--seconds', '1.5', '--services', '10000'],
  policy: args.quick ? ['--quick'] : ['--endpoints', '1000', '--policies', '1000', '--samples', '60'],
  reliability: args.quick ? ['--quick'] : ['--endpoints', '1000', '--rounds', '3'],
  cluster: args.quick
    ? ['--quick']
    : ['--nodes', '100', '--endpoints', '10000', '--rate', '1000', '--seconds', '5', '--samples', '50', '--datapath-rounds', '3', '--datapath-seconds', '1'],
} as const;

function runBench(name: keyof typeof BENCHES): Promise<{ command: string; output: string }> {
  const json = path.join(tmp, `${name}.json`);
  const argv = ['--import', 'tsx', `bench/${name}/run.ts`, ...BENCHES[name], '--json', json];
  const command = `node ${argv.join(' ').replace(json, '<out>.json')}`;
  process.stderr.write(`== ${command}\n`);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('node', argv, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (code) => {
      const seconds = Math.round((performance.now() - t0) / 1000);
      process.stderr.write(`== bench/${name}: ${seconds} s\n`);
      if (code === 0) resolve({ command: `${command} (${seconds} s)`, output });
      else reject(new Error(`bench/${name} failed (${code})`));
    });
  });
}

const read = <T>(name: string): T => JSON.parse(fs.readFileSync(path.join(tmp, `${name}.json`), 'utf8')) as T;
const f = formatNumber;

async function main(): Promise<void> {
  const started = new Date();
  const commands: string[] = [];
  for (const name of Object.keys(BENCHES) as (keyof typeof BENCHES)[]) commands.push((await runBench(name)).command);

  const lines = [...TABLE_HEADER];
  const dp = read<{ rows: RatioRow[]; costLines: string[] }>('datapath');
  for (const r of dp.rows) lines.push(ratioLine(r));
  lines.push(...dp.costLines);
  const ep = read<{ addToFirstConnectMs: { p50: number; p99: number; min: number; max: number }; rssBytesPerEndpoint: number; endpointsAtEnd: number; backToBackAddsPerSecond: number }>('endpoints');
  lines.push(
    `| endpoint add → first TCP connect, ms (p50; p99, min–max) | | ${f(ep.addToFirstConnectMs.p50)} | p99 ${f(ep.addToFirstConnectMs.p99)} (${f(ep.addToFirstConnectMs.min)}–${f(ep.addToFirstConnectMs.max)}) | p50 ≤ 20 ms | ${ep.addToFirstConnectMs.p50 <= 20 ? 'yes' : 'NO'} |`,
  );
  lines.push(`| agent RSS per endpoint at ${ep.endpointsAtEnd} endpoints | | ${f(ep.rssBytesPerEndpoint / 1024)} KiB | | ≤ 8 KiB | ${ep.rssBytesPerEndpoint <= 8192 ? 'yes' : 'NO'} |`);
  lines.push(valueLine('endpoint adds back to back, per second', f(ep.backToBackAddsPerSecond), '', '(reference)', undefined));
  const fl = read<{
    decodeEventsPerSecond: { median: number; min: number; max: number };
    cpuSecondsPer100kEvents: { median: number };
    followLatencyMs: { p50: number; p99: number } | null;
    sustained: { eventsPerSecond: number; lost: number; cpuSecondsPer100kPerSecond: number };
    followerFlowsPerSecond: number;
  }>('flows');
  lines.push(
    `| flow events decoded per second (one core) | | ${f(fl.decodeEventsPerSecond.median)} | (${f(fl.decodeEventsPerSecond.min)}–${f(fl.decodeEventsPerSecond.max)}) | ≥ 1,000,000 | ${fl.decodeEventsPerSecond.median >= 1e6 ? 'yes' : 'NO'} |`,
  );
  lines.push(`| CPU seconds per 100k flow events | | ${f(fl.cpuSecondsPer100kEvents.median)} | | (reference) | |`);
  lines.push(
    valueLine(
      'sustained flood: events/s from the kernel into the flow ring (the sender is the limit)',
      f(fl.sustained.eventsPerSecond),
      `${fl.sustained.lost} lost; ${f(fl.sustained.cpuSecondsPer100kPerSecond)} CPU s/s per 100k events/s`,
      '0 lost',
      fl.sustained.lost === 0,
    ),
  );
  lines.push(valueLine('flows/s an observe --follow -o json reader takes', f(fl.followerFlowsPerSecond), '', '(reference)', undefined));
  if (fl.followLatencyMs) {
    lines.push(`| packet → observe --follow line, ms (p50; p99) | | ${f(fl.followLatencyMs.p50)} | p99 ${f(fl.followLatencyMs.p99)} | ≤ 100 ms | ${fl.followLatencyMs.p99 <= 100 ? 'yes' : 'NO'} |`);
  }
  for (const name of ['services', 'policy', 'reliability'] as const) lines.push(...read<{ lines: string[] }>(name).lines);
  // The cluster's datapath rows (between nodes, against plain kernel VXLAN and routing) are
  // ratios like the datapath's: formatted here from the rows, then its control-plane lines.
  const cl = read<{ rows: RatioRow[]; lines: string[] }>('cluster');
  for (const r of cl.rows) lines.push(ratioLine(r));
  lines.push(...cl.lines);
  const table = lines.join('\n');
  console.log(table);

  if (!args.quick) {
    const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
    const section = [
      '<!-- make-bench:start -->',
      `## Latest \`make bench\` — ${started.toISOString()}`,
      '',
      `Kernel ${os.release()}, ${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB; ${Math.round((Date.now() - started.getTime()) / 1000)} s in all. Commands:`,
      '',
      ...commands.map((c) => `- \`${c}\``),
      '',
      table,
      '<!-- make-bench:end -->',
    ].join('\n');
    const file = path.join(root, 'bench/RESULTS.md');
    const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmark results\n';
    const updated = /<!-- make-bench:start -->[\s\S]*<!-- make-bench:end -->/.test(old)
      ? old.replace(/<!-- make-bench:start -->[\s\S]*<!-- make-bench:end -->/, section)
      : old.replace(/^(# [^\n]*\n)/, `$1\n${section}\n`);
    fs.writeFileSync(file, updated);
    process.stderr.write(`recorded in ${file}\n`);
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  fs.rmSync(tmp, { recursive: true, force: true });
  process.exit(1);
});
