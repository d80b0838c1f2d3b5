import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEndpointRef, parseNamedPorts } from '../../src/endpoint/validate.js';
import { renderTable } from '../../src/util/table.js';

describe('endpoint input validation', () => {
  it('parses named ports with a TCP default', () => {
    assert.deepEqual(parseNamedPorts(['http:80', 'dns:53/udp']), [
      { name: 'http', port: 80, protocol: 'TCP' },
      { name: 'dns', port: 53, protocol: 'UDP' },
    ]);
  });
  for (const bad of ['http', 'http:0', 'http:65536/TCP', 'HTTP:80', '80:80', 'http:80/ICMP', 'a-very-long-port-name:80']) {
    it(`rejects port ${bad}`, () => assert.throws(() => parseNamedPorts([bad])));
  }
  it('rejects duplicate port names', () => assert.throws(() => parseNamedPorts(['a:1', 'a:2']), /given twice/));
  it('parses NS/NAME', () => {
    assert.deepEqual(parseEndpointRef('prod/web'), { namespace: 'prod', name: 'web' });
    assert.throws(() => parseEndpointRef('web'), /NAMESPACE\/NAME/);
    assert.throws(() => parseEndpointRef('a/b/c'));
  });
});

describe('table output', () => {
  it('aligns columns and spreads list cells over lines', () => {
    const out = renderTable(
      [
        { id: 1, labels: ['a=1', 'b=2'] },
        { id: 22, labels: [] },
      ],
      [
        { header: 'ID', value: (r) => r.id },
        { header: 'LABELS', value: (r) => r.labels },
      ],
    );
    assert.equal(out, ['ID   LABELS', '1    a=1', '     b=2', '22'].join('\n'));
  });
});
