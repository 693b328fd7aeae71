// server/protocol.ts validCallToolFrame: the zod-free check of the common call_tool frame. It may only
// ever accept what ClientFrame accepts, and must return exactly what ClientFrame.parse returns; every
// other frame gets null, so the daemon parses it with zod and reports zod's issues.
import assert from 'node:assert/strict';
import { ClientFrame, MAX_ARGUMENT_KEYS, MAX_REQUEST_ID_CHARS, MAX_TOOL_NAME_CHARS, validCallToolFrame } from '../../server/protocol';

/** The fast path agrees with zod on `raw`: same value when it accepts, and it accepts only what zod accepts. */
function assertAgreesWithZod(raw: unknown): 'accepted' | 'deferred' {
  const quick = validCallToolFrame(raw);
  const zod = ClientFrame.safeParse(raw);
  if (quick === null) return 'deferred';
  assert.ok(zod.success, `validCallToolFrame accepted a frame zod refuses: ${JSON.stringify(raw)?.slice(0, 200)}`);
  assert.deepEqual(quick, zod.data);
  return 'accepted';
}

const manyKeys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));

describe('validCallToolFrame (call_tool without zod)', function () {
  it('accepts the frames clients send, exactly as ClientFrame.parse returns them', function () {
    const frames = [
      { op: 'call_tool', request_id: 'r1', name: 'echo', arguments: { text: 'hello' } },
      { op: 'call_tool', request_id: 'r2', name: 'echo' },
      { op: 'call_tool', request_id: 'x'.repeat(MAX_REQUEST_ID_CHARS), name: 'n'.repeat(MAX_TOOL_NAME_CHARS), arguments: {} },
      { op: 'call_tool', request_id: 'r3', name: 'chat', arguments: manyKeys(MAX_ARGUMENT_KEYS) },
      // Unknown keys are dropped, as zod's object does.
      { op: 'call_tool', request_id: 'r4', name: 'echo', arguments: { text: 'a' }, extra: 1, token: 'not echoed' },
    ];
    for (const raw of JSON.parse(JSON.stringify(frames))) assert.equal(assertAgreesWithZod(raw), 'accepted', JSON.stringify(raw).slice(0, 100));
    assert.deepEqual(validCallToolFrame({ op: 'call_tool', request_id: 'r4', name: 'echo', extra: 1 }), { op: 'call_tool', request_id: 'r4', name: 'echo' });
    // The arguments object is passed on as it came (zod's custom check does not copy it).
    const args = { text: 'same' };
    assert.equal(validCallToolFrame({ op: 'call_tool', request_id: 'r', name: 'echo', arguments: args })!.arguments, args);
  });

  it('leaves every invalid or other frame to zod (null)', function () {
    const invalid: unknown[] = [
      null, undefined, 0, 'call_tool', [], [{ op: 'call_tool', request_id: 'r', name: 'echo' }], {},
      { op: 'call_tool' },
      { op: 'call_tool', name: 'echo' },
      { op: 'call_tool', request_id: '', name: 'echo' },
      { op: 'call_tool', request_id: 'x'.repeat(MAX_REQUEST_ID_CHARS + 1), name: 'echo' },
      { op: 'call_tool', request_id: 7, name: 'echo' },
      { op: 'call_tool', request_id: null, name: 'echo' },
      { op: 'call_tool', request_id: 'r' },
      { op: 'call_tool', request_id: 'r', name: '' },
      { op: 'call_tool', request_id: 'r', name: 'n'.repeat(MAX_TOOL_NAME_CHARS + 1) },
      { op: 'call_tool', request_id: 'r', name: ['echo'] },
      { op: 'call_tool', request_id: 'r', name: 'echo', arguments: null },
      { op: 'call_tool', request_id: 'r', name: 'echo', arguments: [] },
      { op: 'call_tool', request_id: 'r', name: 'echo', arguments: 'text' },
      { op: 'call_tool', request_id: 'r', name: 'echo', arguments: 5 },
      { op: 'call_tool', request_id: 'r', name: 'echo', arguments: manyKeys(MAX_ARGUMENT_KEYS + 1) },
      { op: 'CALL_TOOL', request_id: 'r', name: 'echo' },
      { op: 'ping', request_id: 'r' },
      { op: 'cancel', request_id: 'r' },
      { op: 'list_tools' },
      { op: 'hello', protocol: 3, token: 't' },
      JSON.parse('{"__proto__":{"op":"call_tool","request_id":"r","name":"echo"}}'),
    ];
    for (const raw of invalid) {
      assert.equal(validCallToolFrame(raw), null, JSON.stringify(raw)?.slice(0, 100));
    }
  });

  it('never disagrees with zod on random variations of a call_tool frame', function () {
    // A seeded generator (no flakiness): each field drawn from valid and invalid values.
    let seed = 12345;
    const pick = <T>(values: T[]): T => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return values[seed % values.length];
    };
    const absent = Symbol('absent');
    const ops = ['call_tool', 'call_tool', 'cancel', 'ping', '', 7, absent];
    const ids = ['r', 'x'.repeat(MAX_REQUEST_ID_CHARS), 'x'.repeat(MAX_REQUEST_ID_CHARS + 1), '', 1, null, {}, absent];
    const names = ['echo', 'n'.repeat(MAX_TOOL_NAME_CHARS), 'n'.repeat(MAX_TOOL_NAME_CHARS + 1), '', false, absent];
    const argsValues = [{ text: 'a' }, {}, manyKeys(MAX_ARGUMENT_KEYS), manyKeys(MAX_ARGUMENT_KEYS + 1), [], null, 'a', absent];
    let accepted = 0;
    for (let i = 0; i < 2000; i++) {
      const frame: Record<string, unknown> = {};
      for (const [key, values] of [['op', ops], ['request_id', ids], ['name', names], ['arguments', argsValues]] as const) {
        const value = pick<unknown>(values as unknown as unknown[]);
        if (value !== absent) frame[key] = value;
      }
      if (assertAgreesWithZod(frame) === 'accepted') accepted++;
    }
    assert.ok(accepted > 50, `only ${accepted} of the random frames were valid call_tool frames; the generator is broken`);
  });
});
