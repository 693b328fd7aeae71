// LogBudget (server/log.ts): the daemon-wide allowance for log lines that strangers cause.
// Against the real daemon (10,000 junk hellos): test/daemon/httpFloods.test.ts.
import assert from 'node:assert/strict';
import { LogBudget, Redactor, createLogger, type LogSink } from '../../server/log';
import { sleep } from '../helpers/wait';

function memoryLog() {
  const lines: string[] = [];
  const sink: LogSink = { file: null, write: (line) => void lines.push(line), close: async () => {} };
  return { lines, records: () => lines.map((l) => JSON.parse(l)), log: createLogger(sink, new Redactor()) };
}

describe('LogBudget', function () {
  let now = 0;
  const clock = () => now;
  beforeEach(() => (now = 1_000_000));

  it('lets a burst through, then the steady rate; the rest is dropped', function () {
    const { lines, log } = memoryLog();
    const budget = new LogBudget(log, 'unauthenticated connections', { burst: 3, perSecond: 2, summaryEveryMs: 60_000, now: clock });
    const limited = budget.limit(log);
    for (let i = 0; i < 10; i++) limited.info('junk', { i });
    assert.equal(lines.length, 3);
    now += 1000;
    for (let i = 0; i < 10; i++) limited.warn('junk');
    assert.equal(lines.length, 5, 'two more after one second');
    now += 60_000;
    for (let i = 0; i < 10; i++) limited.error('junk');
    assert.equal(lines.length, 8, 'a long pause refills the burst, never more');
    budget.flush();
  });

  it('10,000 lines at once write a fixed number of bytes', function () {
    const { lines, log } = memoryLog();
    const budget = new LogBudget(log, 'unauthenticated connections', { burst: 100, perSecond: 2, summaryEveryMs: 60_000, now: clock });
    const limited = budget.limit(log.child({ client_address: '127.0.0.1' }));
    for (let i = 0; i < 10_000; i++) limited.warn('token refused', { reason: 'token_invalid', detail: 'x'.repeat(200) });
    budget.flush();
    assert.equal(lines.length, 101, '100 lines and one summary');
    assert.ok(lines.join('').length < 101 * 400, `${lines.join('').length} bytes`);
  });

  it('reports what it dropped in one summary line: on flush, or by itself after summaryEveryMs (one per period)', async function () {
    const { records, log } = memoryLog();
    const budget = new LogBudget(log, 'unauthenticated connections', { burst: 1, perSecond: 0, summaryEveryMs: 30 });
    const limited = budget.limit(log);
    for (let i = 0; i < 5; i++) limited.info('junk');
    await sleep(150);
    for (let i = 0; i < 7; i++) limited.info('junk');
    budget.flush();
    budget.flush();
    const summaries = records().filter((r) => r.msg !== 'junk');
    assert.deepEqual(summaries.map((r) => [r.msg, r.suppressed, r.level]), [
      ['suppressed 4 log lines from unauthenticated connections', 4, 'warn'],
      ['suppressed 7 log lines from unauthenticated connections', 7, 'warn'],
    ]);
  });

  it('never drops a line while limited() is false, and children share the budget and the condition', function () {
    const { records, log } = memoryLog();
    const budget = new LogBudget(log, 'unauthenticated connections', { burst: 2, perSecond: 0, summaryEveryMs: 60_000, now: clock });
    let authenticated = false;
    const connection = budget.limit(log.child({ session: 's1' }), () => !authenticated);
    const child = connection.child({ instance: 'w1' });
    connection.info('websocket opened');
    child.info('hello');
    child.info('dropped: the budget is spent');
    authenticated = true; // hello_ack
    for (let i = 0; i < 50; i++) child.info('connected', { i });
    connection.info('closed');
    const msgs = records().map((r) => r.msg);
    assert.deepEqual(msgs.slice(0, 2), ['websocket opened', 'hello']);
    assert.equal(msgs.filter((m) => m === 'connected').length, 50);
    assert.equal(msgs.at(-1), 'closed');
    assert.ok(!msgs.includes('dropped: the budget is spent'));
    assert.deepEqual(records()[2], { ...records()[2], session: 's1', instance: 'w1' }, 'the fields of the children are kept');
    budget.flush();
  });
});
