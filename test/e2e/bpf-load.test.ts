/* Loading the datapath object while signals keep arriving: the verifier abandons a program with
 * EAGAIN when a signal is pending, so an agent under a profiler (or any signal storm) must still
 * load — signals are held back while the verifier works. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { BpfObject } from '../../src/kernel/bpf-object.js';
import { ENDPOINT_OBJECT } from '../../src/datapath/datapath.js';
import { repoRoot } from '../harness/node.js';

describe('loading BPF objects', () => {
  const pinDir = `/sys/fs/bpf/mbt${crypto.randomBytes(3).toString('hex')}-load`;
  after(() => fs.rmSync(pinDir, { recursive: true, force: true }));

  it('loads the endpoint programs while signals rain on the loading thread', async () => {
    let received = 0;
    const onSignal = () => received++;
    process.on('SIGUSR2', onSignal);
    // A shell that signals this process about once a millisecond (for at most ~10 s) until told to stop.
    const storm = spawn('sh', ['-c', `for i in $(seq 5000); do kill -USR2 ${process.pid} || exit; sleep 0.001; done`], { stdio: 'ignore' });
    try {
      // The storm is under way once signals arrive.
      for (const deadline = Date.now() + 5000; received < 5 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 5));
      assert.ok(received >= 5, 'the signal storm did not start');
      const obj = BpfObject.load(path.join(repoRoot, 'build', ENDPOINT_OBJECT), { pinDir, maps: [], programs: ['from_endpoint', 'to_endpoint'] });
      obj.close();
    } finally {
      const gone = new Promise((r) => storm.once('close', r));
      storm.kill('SIGKILL');
      await gone;
      process.off('SIGUSR2', onSignal);
    }
    assert.ok(received > 10, `the storm delivered ${received} signals`);
  });
});
