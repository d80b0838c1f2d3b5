/* `membrane cluster certs`: the certificates agents of a cluster use to reach each other's
 * Observer with mutual TLS, made once at cluster set-up (and again for each node that joins
 * later: a directory that already holds the CA signs with it). Runs without an agent. */
import fs from 'node:fs';
import path from 'node:path';
import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { invalid } from '../errors.js';
import { collectList, type CliContext } from './context.js';
import { parseFormat, print, type Column } from './output.js';

const EXAMPLES = `
Examples:
  membrane cluster certs --out /etc/membrane/certs --node node1=192.168.1.11 --node node2=192.168.1.12
  membrane cluster certs --out /etc/membrane/certs --node node3=192.168.1.13   # later: signed by the same CA
  # then on node1:
  membrane agent --node-name node1 ... --hubble-peer-tls-cert-file /etc/membrane/certs/node1.crt \\
    --hubble-peer-tls-key-file /etc/membrane/certs/node1.key --hubble-peer-tls-ca-file /etc/membrane/certs/ca.crt`;

interface WrittenFile {
  file: string;
  what: string;
}

/** NAME or NAME=IP (a node reached at several addresses: NAME=IP repeated). */
function parseNodes(values: string[]): Map<string, string[]> {
  const nodes = new Map<string, string[]>();
  for (const value of values) {
    const eq = value.indexOf('=');
    const name = eq < 0 ? value : value.slice(0, eq);
    if (name === '') throw invalid(`--node ${JSON.stringify(value)}: give NAME or NAME=IP, e.g. node1=192.168.1.11`);
    const ips = nodes.get(name) ?? [];
    if (eq >= 0) ips.push(value.slice(eq + 1));
    nodes.set(name, ips);
  }
  if (nodes.size === 0) throw invalid('give the nodes with --node NAME=IP (repeat it, or separate them with commas)');
  return nodes;
}

/** Written whole or not at all (a temporary file renamed), with the mode set before any byte lands. */
function writeFileAtomic(file: string, content: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content, { mode, flag: 'wx' });
  fs.renameSync(tmp, file);
}

function days(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 36_500) throw invalid(`${flag} ${text}: give a whole number of days from 1 to 36500`);
  return n;
}

const columns: Column<WrittenFile>[] = [
  { header: 'FILE', value: (f) => f.file },
  { header: 'WHAT', value: (f) => f.what },
];

export function clusterCommand(_ctx: CliContext): CommandUnknownOpts {
  const cluster = new Command('cluster').description('set-up of a cluster of agents (runs without an agent)');
  cluster
    .command('certs')
    .description("write a cluster CA and, for each node, a certificate and key its agent serves and dials its peers' Observer with (mutual TLS)")
    .requiredOption('--out <dir>', 'directory for ca.crt, ca.key and NODE.crt/NODE.key (created 0700; a CA already there signs the new certificates)')
    .option('--node <name[=ip]>', "a node: its name (as --node-name) and its underlay address (as --node-ip); comma-separated or repeated", collectList)
    .option('--cluster-name <name>', 'named in the CA certificate', 'default')
    .option('--days <n>', 'validity of the node certificates', '365')
    .option('--ca-days <n>', 'validity of a new CA', '3650')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .addHelpText('after', EXAMPLES)
    .action(async (o) => {
      const format = parseFormat(o.output);
      const nodes = parseNodes(o.node ?? []);
      const nodeDays = days(o.days, '--days');
      const caDays = days(o.caDays, '--ca-days');
      // Loaded here, not at start: only this command needs the X.509 library.
      const { checkNodeIdentity, createClusterCa, issueNodeCertificate, loadClusterCa } = await import('../cluster/certs.js');
      for (const [name, ips] of nodes) checkNodeIdentity({ name, ips });

      const dir = path.resolve(o.out);
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const caCert = path.join(dir, 'ca.crt');
      const caKey = path.join(dir, 'ca.key');
      const written: WrittenFile[] = [];
      const haveCert = fs.existsSync(caCert);
      if (haveCert !== fs.existsSync(caKey)) {
        throw invalid(`${dir} holds ${haveCert ? 'ca.crt without ca.key' : 'ca.key without ca.crt'}: put the missing file back, or remove the other to make a new CA`);
      }
      if (!haveCert) {
        const ca = await createClusterCa(o.clusterName, caDays);
        writeFileAtomic(caKey, ca.key, 0o600);
        writeFileAtomic(caCert, ca.cert, 0o644);
        written.push({ file: caCert, what: 'cluster CA certificate: every agent trusts it (--hubble-peer-tls-ca-file)' }, { file: caKey, what: 'cluster CA key (0600): keep it off the nodes; needed only to sign more nodes' });
      } else {
        written.push({ file: caCert, what: 'cluster CA certificate (already there: it signs the new certificates)' });
      }
      const ca = await loadClusterCa({ cert: fs.readFileSync(caCert, 'utf8'), key: fs.readFileSync(caKey, 'utf8') }, dir);
      for (const [name, ips] of nodes) {
        const pair = await issueNodeCertificate(ca, { name, ips }, nodeDays);
        const certFile = path.join(dir, `${name}.crt`);
        const keyFile = path.join(dir, `${name}.key`);
        fs.rmSync(keyFile, { force: true }); // reissued: the old key goes with its certificate
        writeFileAtomic(keyFile, pair.key, 0o600);
        fs.rmSync(certFile, { force: true });
        writeFileAtomic(certFile, pair.cert, 0o644);
        const sans = [name, ...ips].join(', ');
        written.push({ file: certFile, what: `node ${name} certificate (${sans}): --hubble-peer-tls-cert-file` }, { file: keyFile, what: `node ${name} key (0600): --hubble-peer-tls-key-file` });
      }
      print(written, format, columns);
    });
  return cluster;
}
