import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANY_L4, PROTO, covers, describeL4, protocolOnly, rangeToPrefixes, type L4Key } from '../../src/policy/ports.js';

const TCP = PROTO.TCP;
const UDP = PROTO.UDP;

/** A key for one exact port. */
const port = (p: number, protocol: number = TCP): L4Key => ({ protocol, port: p, bits: 24 });

/** Ports [start, start + 2^(16-n) - 1] as a prefix of n port bits. */
const prefix = (start: number, portBits: number, protocol: number = TCP): L4Key => ({ protocol, port: start, bits: 8 + portBits });

/** The fewest aligned prefixes covering [start, end], computed independently of the code under
 * test: walk the binary trie of port prefixes and take every maximal block inside the range. */
function minimalPrefixCount(start: number, end: number): number {
  const walk = (base: number, size: number): number => {
    const last = base + size - 1;
    if (last < start || base > end) return 0;
    if (base >= start && last <= end) return 1;
    return walk(base, size / 2) + walk(base + size / 2, size / 2);
  };
  return walk(0, 65536);
}

/** First and last port a key matches (for keys with a port prefix). */
function span(k: L4Key): [number, number] {
  const size = 2 ** (24 - k.bits);
  return [k.port, k.port + size - 1];
}

describe('rangeToPrefixes', () => {
  it('gives one exact key for a single port', () => {
    assert.deepEqual(rangeToPrefixes(TCP, 80, 80), [port(80)]);
    assert.deepEqual(rangeToPrefixes(UDP, 53, 53), [port(53, UDP)]);
    assert.deepEqual(rangeToPrefixes(TCP, 65535, 65535), [port(65535)]);
    assert.deepEqual(rangeToPrefixes(TCP, 1, 1), [port(1)]);
  });

  it('covers an aligned pair with one prefix', () => {
    assert.deepEqual(rangeToPrefixes(TCP, 80, 81), [prefix(80, 15)]);
  });

  it('needs two exact keys for an unaligned pair', () => {
    assert.deepEqual(rangeToPrefixes(TCP, 81, 82), [port(81), port(82)]);
  });

  it('splits 80-90 into 80-87, 88-89 and 90', () => {
    assert.deepEqual(rangeToPrefixes(TCP, 80, 90), [prefix(80, 13), prefix(88, 15), port(90)]);
  });

  it('covers 1-65535 with one prefix per power of two', () => {
    const keys = rangeToPrefixes(TCP, 1, 65535);
    assert.equal(keys.length, 16);
    assert.deepEqual(keys[0], port(1));
    assert.deepEqual(keys[1], prefix(2, 15));
    assert.deepEqual(keys[15], prefix(32768, 1));
    for (let i = 0; i < 16; i++) assert.deepEqual(keys[i], prefix(2 ** i, 16 - i), `prefix ${i}`);
  });

  it('covers 0-65535 with the protocol-only key', () => {
    assert.deepEqual(rangeToPrefixes(TCP, 0, 65535), [protocolOnly(TCP)]);
    assert.deepEqual(rangeToPrefixes(UDP, 0, 65535), [{ protocol: UDP, port: 0, bits: 8 }]);
  });

  it('covers a whole aligned block with one prefix', () => {
    assert.deepEqual(rangeToPrefixes(TCP, 1024, 2047), [prefix(1024, 6)]);
    assert.deepEqual(rangeToPrefixes(TCP, 0, 32767), [prefix(0, 1)]);
    assert.deepEqual(rangeToPrefixes(TCP, 32768, 65535), [prefix(32768, 1)]);
  });

  it('keeps the protocol on every key', () => {
    for (const k of rangeToPrefixes(PROTO.SCTP, 100, 1000)) assert.equal(k.protocol, PROTO.SCTP);
  });

  const ranges: [number, number][] = [
    [80, 80],
    [80, 81],
    [80, 90],
    [1, 65535],
    [0, 65535],
    [0, 0],
    [1, 1023],
    [1024, 65535],
    [8000, 8080],
    [30000, 32767],
    [3, 65533],
    [12345, 54321],
    [65534, 65535],
  ];

  for (const [start, end] of ranges) {
    it(`covers exactly ${start}-${end}, with the fewest aligned prefixes`, () => {
      const keys = rangeToPrefixes(TCP, start, end);
      assert.equal(keys.length, minimalPrefixCount(start, end), 'prefix count');
      for (const k of keys) {
        assert.ok(k.bits >= 8 && k.bits <= 24, `bits ${k.bits}`);
        const size = 2 ** (24 - k.bits);
        assert.equal(k.port % size, 0, `prefix ${k.port}/${k.bits} is aligned`);
      }
      // Every port of the protocol: covered exactly once inside the range, never outside.
      for (let p = 0; p <= 65535; p++) {
        const hits = keys.filter((k) => covers(k, port(p))).length;
        const inside = p >= start && p <= end;
        if (hits !== (inside ? 1 : 0)) assert.fail(`port ${p}: covered ${hits} times, expected ${inside ? 1 : 0}`);
      }
      // And never another protocol.
      assert.ok(!keys.some((k) => covers(k, port(start, UDP))));
      // The spans, in order, are contiguous and add up to the range.
      let next = start;
      for (const k of keys) {
        const [a, b] = span(k);
        assert.equal(a, next, 'contiguous');
        next = b + 1;
      }
      assert.equal(next, end + 1);
    });
  }
});

describe('covers', () => {
  it('the protocol-any key covers everything', () => {
    for (const inner of [ANY_L4, protocolOnly(TCP), protocolOnly(PROTO.ICMP), port(80), prefix(0, 1, UDP), port(8, PROTO.ICMP)]) {
      assert.ok(covers(ANY_L4, inner), JSON.stringify(inner));
    }
  });

  it('nothing narrower covers the protocol-any key', () => {
    for (const outer of [protocolOnly(TCP), port(80), prefix(0, 1)]) assert.ok(!covers(outer, ANY_L4), JSON.stringify(outer));
  });

  it('a protocol-only key covers its protocol, and no other', () => {
    assert.ok(covers(protocolOnly(TCP), protocolOnly(TCP)));
    assert.ok(covers(protocolOnly(TCP), port(80)));
    assert.ok(covers(protocolOnly(TCP), prefix(32768, 1)));
    assert.ok(!covers(protocolOnly(TCP), port(80, UDP)));
    assert.ok(!covers(protocolOnly(TCP), protocolOnly(UDP)));
    assert.ok(!covers(protocolOnly(UDP), protocolOnly(TCP)));
    assert.ok(!covers(port(80), protocolOnly(TCP)));
  });

  it('a port prefix covers the ports and prefixes inside it', () => {
    const p8087 = prefix(80, 13); // 80-87
    assert.ok(covers(p8087, p8087));
    assert.ok(covers(p8087, port(80)));
    assert.ok(covers(p8087, port(87)));
    assert.ok(covers(p8087, prefix(84, 14))); // 84-87
    assert.ok(!covers(p8087, port(79)));
    assert.ok(!covers(p8087, port(88)));
    assert.ok(!covers(p8087, prefix(80, 12)), 'a broader prefix is not covered'); // 80-95
    assert.ok(!covers(prefix(80, 12), prefix(96, 13)), 'a sibling block is not covered');
    assert.ok(!covers(p8087, port(80, UDP)), 'same ports, other protocol');
  });

  it('an exact port covers only itself', () => {
    assert.ok(covers(port(443), port(443)));
    assert.ok(!covers(port(443), port(444)));
    assert.ok(!covers(port(442), prefix(442, 15)));
  });

  it('handles the top half of the port space', () => {
    const top = prefix(32768, 1);
    assert.ok(covers(top, port(65535)));
    assert.ok(covers(top, port(32768)));
    assert.ok(!covers(top, port(32767)));
  });

  it('ICMP type keys cover the same type only', () => {
    assert.ok(covers(port(8, PROTO.ICMP), port(8, PROTO.ICMP)));
    assert.ok(!covers(port(8, PROTO.ICMP), port(0, PROTO.ICMP)));
    assert.ok(covers(protocolOnly(PROTO.ICMP), port(8, PROTO.ICMP)));
    assert.ok(!covers(port(8, PROTO.ICMP), port(8)));
  });
});

describe('describeL4', () => {
  it('names each kind of key', () => {
    assert.equal(describeL4(ANY_L4), 'ANY');
    assert.equal(describeL4(protocolOnly(TCP)), 'TCP/ANY');
    assert.equal(describeL4(protocolOnly(UDP)), 'UDP/ANY');
    assert.equal(describeL4(protocolOnly(PROTO.ICMP)), 'ICMP/ANY');
    assert.equal(describeL4(port(80)), '80/TCP');
    assert.equal(describeL4(port(53, UDP)), '53/UDP');
    assert.equal(describeL4(port(2905, PROTO.SCTP)), '2905/SCTP');
    assert.equal(describeL4(prefix(80, 15)), '80-81/TCP');
    assert.equal(describeL4(prefix(80, 13)), '80-87/TCP');
    assert.equal(describeL4(prefix(32768, 1, UDP)), '32768-65535/UDP');
    assert.equal(describeL4(port(8, PROTO.ICMP)), 'ICMP type 8');
    assert.equal(describeL4(port(0, PROTO.ICMP)), 'ICMP type 0');
  });

  it('prints an unknown protocol by number', () => {
    assert.equal(describeL4({ protocol: 47, port: 0, bits: 8 }), '47/ANY');
    assert.equal(describeL4({ protocol: 47, port: 5, bits: 24 }), '5/47');
  });

  it('describes the prefixes of a range so that they read back as the range', () => {
    assert.deepEqual(rangeToPrefixes(TCP, 80, 90).map(describeL4), ['80-87/TCP', '88-89/TCP', '90/TCP']);
    assert.deepEqual(rangeToPrefixes(TCP, 0, 65535).map(describeL4), ['TCP/ANY']);
  });
});
