/* The CLI as people use it every day: a reader that closes early ends it quietly, versions and
 * shell completion, kubectl's habits (-f, -f -, apply, aliases, -n and --selector, namespaces by
 * path), status that says how policy is enforced and where the listeners are, one revision
 * number, and `make run` / `make clean-run` with options passed through. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, it } from 'node:test';
import type { Endpoint, EndpointPolicyView, Status } from '../../src/api/types.js';
import { AgentClient } from '../../src/api/client.js';
import { eventually, repoRoot, run, TestNode } from '../harness/node.js';

const bin = path.join(repoRoot, 'bin/membrane');

const cnp = (name: string, app: string) => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ${name}, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: ${app}}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
`;

describe('the membrane CLI', () => {
  let node: TestNode;
  let web: Endpoint;
  let client: Endpoint;

  before(async () => {
    node = await TestNode.create({ podCidr: '10.239.0.0/24' });
    await node.api.setNamespace('default');
    await node.api.setNamespace('shop');
    web = await node.api.addEndpoint({ namespace: 'default', name: 'web', labels: ['app=web', 'tier=front'] });
    client = await node.api.addEndpoint({ namespace: 'default', name: 'client', labels: ['app=client'] });
    await node.api.addEndpoint({ namespace: 'shop', name: 'web', labels: ['app=web'] });
  });
  after(async () => node?.cleanup());

  it('ends quietly with status 0 when its reader closes the pipe early', async () => {
    // `membrane observe --follow -o json | head -1`: the reader takes one line and goes.
    const child = spawn(bin, ['observe', '--follow', '-o', 'json'], { env: node.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    assert.ok(await eventually(async () => (await node.api.status()).flows.followers > 0, 30_000), 'the follower connected');
    const lines = readline.createInterface({ input: child.stdout });
    const first = new Promise<string>((resolve) => lines.once('line', resolve));
    let done = false;
    void exited.then(() => (done = true));
    // Traffic until the reader has its line and the command, writing on, meets the closed pipe.
    const traffic = (async () => {
      while (!done) await node.ping(client.netns, web.ipv4);
    })();
    await first;
    lines.close();
    child.stdout.destroy();
    const code = await exited;
    await traffic;
    assert.equal(code, 0, stderr);
    assert.equal(stderr, '', 'nothing on stderr: no EPIPE stack trace');
  });

  it('prints versions: --version, and version with the agent and the datapath objects', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal((await node.cli('--version')).stdout.trim(), pkg.version);
    const v = await node.cliJson<{ client: { version: string }; agent: { version: string; datapath: Record<string, string> } }>('version');
    assert.equal(v.client.version, pkg.version);
    assert.equal(v.agent.version, pkg.version);
    assert.deepEqual(Object.keys(v.agent.datapath).sort(), ['endpoint.o', 'sock.o']);
    for (const hash of Object.values(v.agent.datapath)) assert.match(hash, /^[0-9a-f]{16}$/);
    const away = await run(bin, ['version'], { env: { ...process.env, MEMBRANE_SOCKET: path.join(node.dir, 'nobody.sock') } });
    assert.notEqual(away.code, 0);
    assert.match(away.stdout, /^Client: /m, "the CLI's own version still prints");
  });

  it('completes nouns, verbs and flags in bash, and prints zsh and fish completion', async () => {
    const script = (await node.cli('completion', 'bash')).stdout;
    const complete = (words: string[]) => {
      const r = spawnSync('bash', ['-c', `eval "$(cat)"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _membrane; echo "\${COMPREPLY[@]}"`], { input: script, encoding: 'utf8' });
      return r.stdout.trim().split(' ').filter(Boolean);
    };
    assert.deepEqual(complete(['membrane', 'endpoint', 'a']), ['add']);
    assert.deepEqual(complete(['membrane', 'ep', 'list', '--sel']), ['--selector']);
    assert.deepEqual(complete(['membrane', 'pol', 'import', '--file']), ['--filename']);
    assert.ok(complete(['membrane', '']).includes('observe'));
    assert.match((await node.cli('completion', 'zsh')).stdout, /bashcompinit/);
    assert.match((await node.cli('completion', 'fish')).stdout, /complete -c membrane -n '__fish_use_subcommand' -a '[^']*\bendpoint\b/);
    assert.match((await node.cli('completion', 'tcsh')).stderr, /choose bash, zsh or fish/);
  });

  it('prints no colour codes into a pipe', async () => {
    await node.ping(client.netns, web.ipv4);
    const r = await node.cli('observe', '--last', '5');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes('FORWARDED'));
    assert.ok(!r.stdout.includes('\x1b['), 'an escape code in piped output');
    assert.ok(!(await node.cli('endpoint', 'get', 'default/nobody')).stderr.includes('\x1b['));
  });

  it('imports with -f, from standard input with -f -, and through apply; says where a policy without namespace went', async () => {
    const file = node.writeFile('web.yaml', cnp('web-f', 'web'));
    assert.equal((await node.cli('policy', 'import', '-f', file)).code, 0);
    const stdin = await run(bin, ['apply', '-f', '-'], { env: node.env, input: cnp('web-stdin', 'web') });
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.match(stdin.stdout, /web-stdin/);
    const names = (await node.api.listPolicies()).policies.map((p) => p.name);
    assert.ok(names.includes('web-f') && names.includes('web-stdin'), names.join(','));
    assert.match((await node.cli('policy', 'validate', '-f', file)).stdout, /1 policies are valid/);
    const none = await node.cli('policy', 'import');
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /no policy file given/);
  });

  it('takes short aliases and lists endpoints of one namespace or by labels', async () => {
    const names = (rows: Endpoint[]) => rows.map((e) => `${e.namespace}/${e.name}`).sort();
    assert.deepEqual(names(await node.cliJson<Endpoint[]>('ep', 'list', '-n', 'shop')), ['shop/web']);
    assert.deepEqual(names(await node.cliJson<Endpoint[]>('ep', 'list', '--selector', 'app=web')), ['default/web', 'shop/web']);
    assert.deepEqual(names(await node.cliJson<Endpoint[]>('ep', 'list', '-n', 'default', '-l', 'app=web,tier')), ['default/web']);
    assert.deepEqual(names(await node.cliJson<Endpoint[]>('ep', 'list', '-l', 'k8s:tier=front')), ['default/web']);
    assert.ok((await node.cliJson<{ name: string }[]>('ns', 'list')).some((n) => n.name === 'shop'));
    assert.equal((await node.cli('pol', 'get')).code, 0);
    for (const cmd of [['endpoint', 'add'], ['policy', 'import'], ['apply'], ['observe'], ['service', 'add'], ['completion']]) {
      assert.match((await node.cli(...cmd, '--help')).stdout, /\nExamples:\n {2}.*\bmembrane /, `${cmd.join(' ')} --help shows examples`);
    }
  });

  it('wires a namespace given by path: /run/netns/NAME, or a process\'s /proc/PID/ns/net', async () => {
    const byName = `${node.prefix}-byname`;
    await run('ip', ['netns', 'add', byName]);
    const e1 = await node.cliJson<Endpoint>('endpoint', 'add', 'default/byname', '--netns', `/run/netns/${byName}`);
    assert.equal(e1.netns, byName);
    // A process in a namespace of its own that no `ip netns` name points at.
    const proc = spawn('unshare', ['--net', 'sleep', '120'], { stdio: 'ignore' });
    try {
      const nsPath = `/proc/${proc.pid}/ns/net`;
      assert.ok(await eventually(() => fs.readlinkSync(nsPath) !== fs.readlinkSync('/proc/self/ns/net'), 5000), 'the process has its namespace');
      const e2 = await node.cliJson<Endpoint>('endpoint', 'add', 'default/byproc', '--netns', nsPath);
      assert.equal(e2.netns, `${node.name}.attached-default-byproc`);
      assert.equal(fs.statSync(`/run/netns/${e2.netns}`).ino, fs.statSync(nsPath).ino, 'the name is the process\'s namespace');
      const inside = () => spawnSync('nsenter', [`--net=${nsPath}`, 'ip', '-j', '-4', 'address', 'show', 'dev', 'eth0'], { encoding: 'utf8' });
      assert.ok(inside().stdout.includes(e2.ipv4), inside().stdout + inside().stderr);
      // A restart that finds the plumbing gone re-plumbs into the same namespace, keeping its name.
      await node.killAgent();
      await run('ip', ['-n', node.netns, 'link', 'delete', e2.interface]);
      await node.startAgent();
      const back = await node.cliJson<Endpoint>('endpoint', 'get', 'default/byproc');
      assert.equal(back.state, 'ready', back.stateReason);
      assert.equal(fs.statSync(`/run/netns/${e2.netns}`).ino, fs.statSync(nsPath).ino, 'still named after the restart');
      assert.ok(inside().stdout.includes(e2.ipv4), 'wired again');
      await node.api.deleteEndpoint('default', 'byproc');
      assert.ok(!fs.existsSync(`/run/netns/${e2.netns}`), 'the name the agent made is gone');
      assert.ok(fs.existsSync(nsPath) && proc.exitCode === null, "the process and its namespace stay");
      const bad = await node.cli('endpoint', 'add', 'default/bad', '--netns', '/etc/passwd');
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /is not a network namespace/);
    } finally {
      proc.kill('SIGKILL');
      await node.api.deleteEndpoint('default', 'byname').catch(() => undefined);
    }
  });

  it('shows enforcement, audit mode and listeners in status, and one policy revision everywhere', async () => {
    const s = await node.cliJson<Status>('status');
    assert.deepEqual(s.policy, { enforcement: 'default', auditMode: false, revision: s.policy.revision });
    const table = (await node.cli('status')).stdout;
    assert.match(table, /^Policy: +enforcement default, revision \d+$/m);
    assert.match(table, /^Observer: +127\.0\.0\.1:4245 \(plaintext\), .*hubble\.sock$/m);
    assert.match(table, /^Metrics: +127\.0\.0\.1:9965\/metrics \(plaintext\)$/m);
    const revision = Number(/^Revision: (\d+)$/m.exec((await node.cli('policy', 'get')).stdout)?.[1]);
    const view = await node.cliJson<EndpointPolicyView>('bpf', 'policy', 'get', 'default/web');
    assert.equal(view.policyRevision, revision, 'bpf policy get names the same revision as policy get');
    assert.equal(s.policy.revision, revision);
    assert.equal(typeof view.endpointRevision, 'number');
  });
});

describe('make run and make clean-run', () => {
  it('passes ARGS to the agent, and clean-run ends what still runs in the namespaces it removes', async () => {
    const id = `mbt${crypto.randomBytes(3).toString('hex')}`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${id}-`));
    const cgroup = path.join(fs.readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2')!.split(' ')[1]!, id);
    fs.mkdirSync(cgroup);
    const env = {
      ...process.env,
      MEMBRANE_NODE_NETNS: `${id}-node`,
      MEMBRANE_NODE_NAME: id,
      MEMBRANE_POD_CIDR: '10.240.0.0/24',
      MEMBRANE_STATE_DIR: path.join(dir, 'state'),
      MEMBRANE_BPFFS_DIR: `/sys/fs/bpf/${id}`,
      MEMBRANE_SOCKET: path.join(dir, 'agent.sock'),
    };
    const agent = spawn('make', ['-s', 'run', `ARGS=--policy-audit-mode --cgroup-root ${cgroup} --hubble-socket ${path.join(dir, 'hubble.sock')} --log-format text`], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    agent.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const api = new AgentClient(env.MEMBRANE_SOCKET);
    let owner: ReturnType<typeof spawn> | undefined;
    try {
      assert.ok(await eventually(async () => (await api.status().catch(() => undefined)) !== undefined, 60_000, 100), `the agent did not start:\n${log}`);
      assert.equal((await api.status()).policy.auditMode, true, 'ARGS reached the agent');
      assert.match(log, /INFO.*agent ready/, 'a readable log, as asked for with --log-format text');
      await api.setNamespace('default');
      const ep = await api.addEndpoint({ namespace: 'default', name: 'server' });
      const server = spawn('ip', ['netns', 'exec', ep.netns, 'sleep', '300'], { stdio: 'ignore' });
      assert.ok(await eventually(() => spawnSync('ip', ['netns', 'pids', ep.netns], { encoding: 'utf8' }).stdout.trim() !== '', 5000));
      // A process whose own namespace an endpoint was given by path is not the quickstart's to end.
      owner = spawn('unshare', ['--net', 'sleep', '300'], { stdio: 'ignore' });
      const ownerNs = `/proc/${owner.pid}/ns/net`;
      assert.ok(await eventually(() => fs.readlinkSync(ownerNs) !== fs.readlinkSync('/proc/self/ns/net'), 5000));
      const attached = await api.addEndpoint({ namespace: 'default', name: 'proc', netns: ownerNs });
      const clean = await run('make', ['-s', 'clean-run'], { env, timeoutMs: 60_000 });
      assert.equal(clean.code, 0, clean.stderr);
      const serverExit = await new Promise((r) => (server.exitCode !== null || server.signalCode !== null ? r(server.signalCode) : server.once('exit', (_c, sig) => r(sig))));
      assert.equal(serverExit, 'SIGKILL', 'the process in the removed namespace was ended');
      assert.ok(owner.exitCode === null && owner.signalCode === null, 'the process given by path lives on');
      assert.ok(!fs.existsSync(`/run/netns/${attached.netns}`), 'only the name the agent gave it is gone');
      const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(id));
      assert.deepEqual(left, []);
      assert.ok(!fs.existsSync(env.MEMBRANE_BPFFS_DIR) && !fs.existsSync(env.MEMBRANE_STATE_DIR));
    } finally {
      owner?.kill('SIGKILL');
      if (agent.exitCode === null) agent.kill('SIGKILL');
      spawnSync('scripts/clean-run.sh', { cwd: repoRoot, env });
      fs.rmSync(dir, { recursive: true, force: true });
      try {
        fs.rmdirSync(cgroup);
      } catch {
        // still has processes the cleanup above ends: the next run's name differs
      }
    }
  });
});
