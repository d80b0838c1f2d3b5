/* Endpoint lifecycle: an existing namespace can be wired, deletion leaves nothing behind, and
 * bad input is refused with one clear line while the agent's state stays exactly as it was. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Endpoint } from '../../src/api/types.js';
import { TestNode, run } from '../harness/node.js';

describe('endpoint lifecycle and bad input', () => {
  let node: TestNode;

  before(async () => {
    node = await TestNode.create({ podCidr: '10.213.0.0/24' });
    await node.api.setNamespace('default');
  });
  after(async () => node?.cleanup());

  // Only this node's namespaces: other test files run alongside.
  const netnsList = async () =>
    (await run('ip', ['netns', 'list'])).stdout
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n.startsWith(node.prefix))
      .sort();
  const nodeLinks = async () => JSON.parse((await node.execNode(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[];
  const pins = () => fs.readdirSync(path.join(node.bpffsDir, 'links'));

  it('stores named ports with the endpoint', async () => {
    const e = await node.cliJson<Endpoint>('endpoint', 'add', 'default/web', '--port', 'http:80/TCP', '--port', 'dns:53/udp');
    assert.deepEqual(e.ports, [
      { name: 'http', port: 80, protocol: 'TCP' },
      { name: 'dns', port: 53, protocol: 'UDP' },
    ]);
    assert.equal(e.state, 'ready');
  });

  it('keeps prepared plumbing ready and hands it to new endpoints', async () => {
    const pooled = async () => (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`${node.name}.pool`));
    const ready = async () => {
      for (let i = 0; i < 200; i++) {
        const s = await node.api.status();
        if (s.interfacePool.ready === s.interfacePool.size) return s.interfacePool;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error('the pool never refilled');
    };
    assert.deepEqual(await ready(), { ready: 2, size: 2 });
    assert.equal((await pooled()).length, 2, 'two prepared namespaces wait');
    const e = await node.api.addEndpoint({ namespace: 'default', name: 'pooled' });
    assert.equal(e.netns, `${node.name}-default-pooled`);
    assert.ok((await nodeLinks()).some((l) => l.ifname === e.interface), `host side renamed ${e.interface}`);
    assert.ok(pins().includes(`ep${e.id}-from-endpoint`) && pins().includes(`ep${e.id}-to-endpoint`), 'its pins are the endpoint\'s');
    const r = await node.exec(e.netns, ['ip', '-j', '-4', 'address', 'show', 'dev', 'eth0']);
    assert.match(r.stdout, new RegExp(e.ipv4.replace(/\./g, '\\.')));
    assert.ok(await node.ping(e.netns, (await node.api.status()).node.routerIP), 'it reaches the node');
    await ready();
    // A restarted agent removes the sets an earlier one prepared and prepares its own.
    await node.killAgent('SIGKILL');
    await node.startAgent();
    await ready();
    assert.equal((await pooled()).length, 2);
    assert.equal((await nodeLinks()).filter((l) => l.ifname.startsWith('lxcp')).length, 2);
    await node.api.deleteEndpoint('default', 'pooled');
  });

  it('honours a requested address', async () => {
    const e = await node.cliJson<Endpoint>('endpoint', 'add', 'default/fixed', '--ipv4', '10.213.0.77');
    assert.equal(e.ipv4, '10.213.0.77');
    const r = await node.exec(e.netns, ['ip', '-j', '-4', 'address', 'show', 'dev', 'eth0']);
    assert.match(r.stdout, /10\.213\.0\.77/);
  });

  it('wires an existing network namespace and leaves it in place on delete', async () => {
    const own = `${node.prefix}-byo`;
    await run('ip', ['netns', 'add', own]);
    const e = await node.cliJson<Endpoint>('endpoint', 'add', 'default/byo', '--netns', own);
    assert.equal(e.netns, own);
    assert.equal(e.netnsOwned, false);
    const peer = await node.api.getEndpoint('default', 'web');
    await node.echoServer(peer.netns, 9000);
    assert.ok(await node.probe(own, 'tcp', peer.ipv4, 9000));
    await node.api.deleteEndpoint('default', 'byo');
    assert.ok((await netnsList()).includes(own), 'a namespace the agent did not create survives');
    const r = await run('ip', ['-n', own, 'link', 'show', 'eth0']);
    assert.notEqual(r.code, 0, 'its eth0 is gone');
  });

  it('deletes an endpoint without leaving a namespace, link, route or pin behind', async () => {
    const e = await node.api.addEndpoint({ namespace: 'default', name: 'tmp' });
    assert.ok((await netnsList()).includes(e.netns));
    assert.ok(pins().some((p) => p.startsWith(`ep${e.id}-`)));
    const r = await node.cli('endpoint', 'delete', 'default/tmp');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!(await netnsList()).includes(e.netns), 'netns removed');
    assert.ok(!(await nodeLinks()).some((l) => l.ifname === e.interface), 'host link removed');
    assert.ok(!pins().some((p) => p.startsWith(`ep${e.id}-`)), 'link pins removed');
    const routes = (await node.execNode(['ip', 'route', 'show'])).stdout;
    assert.ok(!routes.includes(`${e.ipv4} `), `route to ${e.ipv4} removed:\n${routes}`);
    const get = await node.cli('endpoint', 'get', 'default/tmp');
    assert.notEqual(get.code, 0);
  });

  /** Every ep_id an entry of a pinned map names (also in nested structs, like a CT entry's two sides), read back from the kernel with bpftool. */
  const mapEndpointIds = async (map: string, where: 'key' | 'value'): Promise<number[]> => {
    const r = await run('bpftool', ['-j', 'map', 'dump', 'pinned', path.join(node.bpffsDir, 'maps', map)]);
    assert.equal(r.code, 0, r.stderr);
    const entries = JSON.parse(r.stdout) as { formatted: { key: unknown; value?: unknown } }[];
    const idsIn = (x: unknown): number[] =>
      x && typeof x === 'object' ? Object.entries(x).flatMap(([k, v]) => (k === 'ep_id' && typeof v === 'number' ? [v] : idsIn(v))) : [];
    return entries.flatMap((e) => idsIn(where === 'key' ? e.formatted.key : e.formatted.value));
  };

  it('removes the map entries of a deleted endpoint: endpoint, address, policy, connections, counters', async () => {
    const server = await node.api.addEndpoint({ namespace: 'default', name: 'gone', labels: ['role=gone'] });
    const peer = await node.api.addEndpoint({ namespace: 'default', name: 'peer' });
    await node.echoServer(server.netns, 7100);
    await node.api.importPolicies([
      {
        name: 'p.yaml',
        content: `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: gone-tcp-only, namespace: default}
spec:
  endpointSelector: {matchLabels: {role: gone}}
  ingress:
  - toPorts: [{ports: [{port: "7100", protocol: TCP}]}]
`,
      },
    ]);
    assert.ok(await node.probe(peer.netns, 'tcp', server.ipv4, 7100), 'an allowed connection (CT entries)');
    assert.ok(!(await node.probe(peer.netns, 'udp', server.ipv4, 7100, 500)), 'a denied one (a drop counter)');
    const id = server.id;
    assert.ok((await mapEndpointIds('mb_endpoints', 'value')).includes(id));
    assert.ok((await mapEndpointIds('mb_lxc', 'value')).includes(id));
    assert.ok((await mapEndpointIds('mb_policy', 'key')).includes(id));
    assert.ok((await mapEndpointIds('mb_ct', 'value')).includes(id));
    assert.ok((await mapEndpointIds('mb_metrics', 'key')).includes(id));
    await node.api.deleteEndpoint('default', 'gone');
    for (const [map, where] of [['mb_endpoints', 'value'], ['mb_lxc', 'value'], ['mb_policy', 'key'], ['mb_ct', 'value'], ['mb_metrics', 'key']] as const) {
      assert.ok(!(await mapEndpointIds(map, where)).includes(id), `${map} has nothing of endpoint ${id} left`);
    }
    await node.api.deletePolicy({ all: true });
    await node.api.deleteEndpoint('default', 'peer');
  });

  it('gives endpoints whose names read alike distinct namespaces, and never deletes one it did not create', async () => {
    await node.api.setNamespace('a-b');
    await node.api.setNamespace('a');
    const first = await node.api.addEndpoint({ namespace: 'a-b', name: 'c' });
    const second = await node.api.addEndpoint({ namespace: 'a', name: 'b-c' });
    assert.equal(first.netns, `${node.name}-a-b-c`);
    assert.notEqual(second.netns, first.netns);
    assert.ok(await node.ping(first.netns, second.ipv4), 'both endpoints are wired and reach each other');
    // A namespace someone else made with the name the agent would pick is left alone.
    const squatted = `${node.name}-default-squat`;
    await run('ip', ['netns', 'add', squatted]);
    await run('ip', ['-n', squatted, 'link', 'add', 'mine0', 'type', 'veth', 'peer', 'name', 'mine1']);
    const e = await node.api.addEndpoint({ namespace: 'default', name: 'squat' });
    assert.notEqual(e.netns, squatted);
    const links = await run('ip', ['-n', squatted, '-j', 'link', 'show']);
    assert.ok((JSON.parse(links.stdout) as { ifname: string }[]).some((l) => l.ifname === 'mine0'), 'the existing namespace is untouched');
    for (const [ns, name] of [['a-b', 'c'], ['a', 'b-c'], ['default', 'squat']] as const) await node.api.deleteEndpoint(ns, name);
    assert.ok((await netnsList()).includes(squatted));
  });

  it('refuses a namespace that already has an eth0, before touching anything', async () => {
    const taken = `${node.prefix}-taken`;
    await run('ip', ['netns', 'add', taken]);
    await run('ip', ['-n', taken, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
    const before = await node.api.listEndpoints();
    const r = await node.cli('endpoint', 'add', 'default/taken', '--netns', taken);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /already has an interface eth0/);
    assert.deepEqual(await node.api.listEndpoints(), before);
    const links = await run('ip', ['-n', taken, '-j', 'link', 'show']);
    assert.deepEqual((JSON.parse(links.stdout) as { ifname: string }[]).map((l) => l.ifname).sort(), ['eth0', 'lo', 'other0']);
  });

  const badInputs: [string, string[], RegExp][] = [
    ['unknown namespace', ['endpoint', 'add', 'nope/x'], /namespace "nope" does not exist/],
    ['duplicate name', ['endpoint', 'add', 'default/web'], /already exists/],
    ['malformed label', ['endpoint', 'add', 'default/x', '--labels', 'app=web,=oops'], /label "=oops"/],
    ['malformed label value', ['endpoint', 'add', 'default/x', '--labels', 'app=no spaces'], /label "app=no spaces"/],
    ['a reserved label', ['endpoint', 'add', 'default/x', '--labels', 'reserved:host'], /assigned by the agent only/],
    ['address outside the CIDR', ['endpoint', 'add', 'default/x', '--ipv4', '10.99.0.5'], /outside the usable range/],
    ['address already taken', ['endpoint', 'add', 'default/x', '--ipv4', '10.213.0.77'], /already used/],
    ['not an address', ['endpoint', 'add', 'default/x', '--ipv4', '10.213.0'], /not an IPv4 address/],
    // iproute2 reads 010 as octal 8: the agent and the kernel would disagree on the address.
    ['an address with a leading zero', ['endpoint', 'add', 'default/x', '--ipv4', '10.213.0.010'], /without leading zeros/],
    ['a hexadecimal address', ['endpoint', 'add', 'default/x', '--ipv4', '0x0a.213.0.5'], /not an IPv4 address/],
    ['an address as one number', ['endpoint', 'add', 'default/x', '--ipv4', '181993477'], /not an IPv4 address/],
    ['a name with a line break', ['endpoint', 'add', 'default/a\nb'], /endpoint name "a\\nb"/],
    ['a name too long for its namespace', ['endpoint', 'add', `default/${'a'.repeat(253)}`], /at most \d+ fit here: its network namespace is named .* at most 255 bytes/],
    ['bad port', ['endpoint', 'add', 'default/x', '--port', 'http:70000/TCP'], /out of range/],
    ['bad reference', ['endpoint', 'add', 'just-a-name'], /NAMESPACE\/NAME/],
    ['unknown endpoint (get)', ['endpoint', 'get', 'default/ghost'], /does not exist/],
    ['unknown endpoint (delete)', ['endpoint', 'delete', 'default/ghost'], /does not exist/],
    ['unknown endpoint (update)', ['endpoint', 'update', 'default/ghost', '--labels', 'a=b'], /does not exist/],
    ['missing netns', ['endpoint', 'add', 'default/x', '--netns', 'no-such-netns-here'], /does not exist/],
    ['bad namespace name', ['namespace', 'set', 'Not_Valid'], /DNS label/],
    ['bad output format', ['endpoint', 'list', '-o', 'xml'], /choose table, json or yaml/],
  ];

  for (const [what, args, message] of badInputs) {
    it(`rejects ${what} with one line and no change`, async () => {
      const before = await node.api.listEndpoints();
      const beforeIds = await node.api.listIdentities();
      const beforeNetns = await netnsList();
      const r = await node.cli(...args);
      assert.notEqual(r.code, 0, 'non-zero exit');
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.match(r.stderr, /^Error: /);
      assert.deepEqual(await node.api.listEndpoints(), before, 'endpoints unchanged');
      assert.deepEqual(await node.api.listIdentities(), beforeIds, 'identities unchanged');
      assert.deepEqual(await netnsList(), beforeNetns, 'no namespace created or removed');
    });
  }

  it("refuses the node's own namespace and a second name of an endpoint's, leaving the node's routes alone", async () => {
    const routes = async () => (await node.execNode(['ip', '-j', 'route', 'show'])).stdout;
    const before = await routes();
    const own = await node.cli('endpoint', 'add', 'default/hijack', '--netns', node.netns);
    assert.notEqual(own.code, 0);
    assert.match(own.stderr, /is the node's own namespace/);
    assert.equal(await routes(), before, "the node's routes are unchanged");
    // Another name for an existing endpoint's namespace (as `ip netns attach` would make).
    const victim = await node.api.addEndpoint({ namespace: 'default', name: 'victim' });
    const alias = `${node.prefix}-alias`;
    fs.writeFileSync(`/run/netns/${alias}`, '');
    try {
      assert.equal((await run('mount', ['--bind', `/run/netns/${victim.netns}`, `/run/netns/${alias}`])).code, 0);
      const again = await node.cli('endpoint', 'add', 'default/twice', '--netns', alias);
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /already wired to endpoint default\/victim/);
      assert.equal((await node.api.listEndpoints()).filter((e) => e.name === 'hijack' || e.name === 'twice').length, 0);
    } finally {
      await run('ip', ['netns', 'delete', alias]);
      fs.rmSync(`/run/netns/${alias}`, { force: true });
      await node.api.deleteEndpoint('default', 'victim');
    }
  });

  it('removes what an add interrupted by kill -9 created, once the agent is back', async () => {
    // Kill the agent the moment the new endpoint's namespace appears (before the add is
    // committed); an add that won the race is deleted and tried again.
    for (let attempt = 1; ; attempt++) {
      const name = `crash${attempt}`;
      const netns = `${node.name}-default-${name}`;
      const appeared = new Promise<void>((resolve) => {
        const watcher = fs.watch('/run/netns', (_event, file) => {
          if (file === netns) {
            watcher.close();
            resolve();
          }
        });
      });
      const add = node.api.addEndpoint({ namespace: 'default', name }).catch(() => undefined);
      await appeared;
      await node.killAgent('SIGKILL');
      await add;
      await node.startAgent();
      if ((await node.api.listEndpoints()).some((e) => e.name === name)) {
        await node.api.deleteEndpoint('default', name);
        assert.ok(attempt < 20, 'the add always finished before the kill landed');
        continue;
      }
      assert.ok(!fs.existsSync(`/run/netns/${netns}`), `${netns} was left behind by the interrupted add`);
      assert.deepEqual((await nodeLinks()).filter((l) => /^lxc\d+$/.test(l.ifname)).map((l) => l.ifname).sort(), (await node.api.listEndpoints()).map((e) => e.interface).sort());
      // The name is free again: the same endpoint can be added, in the namespace named after it.
      const e = await node.api.addEndpoint({ namespace: 'default', name });
      assert.equal(e.netns, netns);
      await node.api.deleteEndpoint('default', name);
      return;
    }
  });

  it('keeps running after bad input', async () => {
    const s = await node.api.status();
    assert.equal(s.health, 'ok');
    assert.equal(node.agent?.exitCode, null);
  });
});
