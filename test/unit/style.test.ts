/* Colours: verdicts and errors on a terminal, plain text anywhere else or with NO_COLOR. */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { formatCompact, formatDict } from '../../src/flow/printer.js';
import { colourWanted, styled } from '../../src/util/style.js';
import * as fixtures from '../harness/flows.js';

describe('colours', () => {
  const saved = process.env.NO_COLOR;
  afterEach(() => {
    if (saved === undefined) delete process.env.NO_COLOR;
    else process.env.NO_COLOR = saved;
  });

  it('are wanted on a terminal only, and never with NO_COLOR', () => {
    delete process.env.NO_COLOR;
    assert.equal(colourWanted({ isTTY: true }), true);
    assert.equal(colourWanted({ isTTY: false }), false);
    assert.equal(colourWanted({}), false);
    process.env.NO_COLOR = '1';
    assert.equal(colourWanted({ isTTY: true }), false);
  });

  it('colour verdicts: dropped red, forwarded green; none unless asked', () => {
    assert.ok(formatCompact(fixtures.drop, { colour: true }).includes(styled('DROPPED', 'red', true)));
    assert.ok(formatCompact(fixtures.udp, { colour: true }).includes('\x1b[32mFORWARDED\x1b[39m'));
    assert.ok(formatDict(fixtures.drop, { colour: true }).includes('\x1b[31mDROPPED\x1b[39m'));
    assert.ok(!formatCompact(fixtures.drop).includes('\x1b['));
    assert.equal(styled('x', 'red', false), 'x');
  });
});
