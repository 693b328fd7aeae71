// The daemon's log: Redactor (what must never reach the disk) and createLogger / openLogFile (its byte bounds).
// LogBudget: test/unit/logBudget.test.ts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redactor, createLogger, openLogFile, type LogSink } from '../../server/log';
import { sleep } from '../helpers/wait';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

function memorySink(): LogSink & { lines: string[] } {
  const lines: string[] = [];
  return { file: null, lines, write: (line) => void lines.push(line), close: async () => {} };
}

describe('Redactor', function () {
  it('removes three-segment JWTs (signed or not), wherever they sit in the text', function () {
    const r = new Redactor();
    assert.equal(r.redact(`token=${JWT} rest`), 'token=[redacted-jwt] rest');
    assert.equal(r.redact(`{"t":"${JWT}"}`), '{"t":"[redacted-jwt]"}');
    assert.equal(r.redact('eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'), '[redacted-jwt]', 'alg none, empty signature');
    assert.equal(r.redact(`${JWT} and ${JWT}`), '[redacted-jwt] and [redacted-jwt]');
  });

  it('leaves text that only looks a bit like a JWT', function () {
    const r = new Redactor();
    assert.equal(r.redact('eyJ is a prefix; a.b.c is not a token'), 'eyJ is a prefix; a.b.c is not a token');
  });

  it('removes Bearer values, any case, keeping the word', function () {
    const r = new Redactor();
    assert.equal(r.redact('Authorization: Bearer xyz'), 'Authorization: Bearer [redacted]');
    assert.equal(r.redact('{"h":"bearer abc.def-123"}'), '{"h":"bearer [redacted]"}');
    assert.equal(r.redact('BEARER   s3cr3t, next'), 'BEARER   [redacted], next');
  });

  it('removes the password of postgres:// URLs and keeps user and host', function () {
    const r = new Redactor();
    assert.equal(r.redact('postgres://app:hunter2@db.example.com:5432/x'), 'postgres://app:[redacted]@db.example.com:5432/x');
    assert.equal(r.redact('{"url":"postgresql://u:p%40ss@127.0.0.1/db"}'), '{"url":"postgresql://u:[redacted]@127.0.0.1/db"}');
    assert.equal(r.redact('postgres://u@host/db'), 'postgres://u@host/db', 'no password, nothing to remove');
  });

  it('removes every occurrence of a registered secret', function () {
    const r = new Redactor();
    const secret = 'Zx9-local-secret_0123456789abcdefghijkl';
    r.addSecret(secret);
    assert.equal(r.redact(`a ${secret} b ${secret}c`), 'a [redacted] b [redacted]c');
    assert.equal(r.redact(JSON.stringify({ instance: `w-${secret}` })), '{"instance":"w-[redacted]"}');
  });

  it('ignores null, undefined and empty secrets', function () {
    const r = new Redactor();
    r.addSecret(null);
    r.addSecret(undefined);
    r.addSecret('');
    assert.equal(r.redact('nothing to hide'), 'nothing to hide');
  });

  it('does not register secrets shorter than 8 characters (so common words are not redacted); 8 is enough', function () {
    const r = new Redactor();
    r.addSecret('hunter2'); // 7 characters: ignored
    r.addSecret('12345678'); // 8 characters: registered
    assert.equal(r.redact('hunter2 was here'), 'hunter2 was here');
    assert.equal(r.redact('pin 12345678'), 'pin [redacted]');
  });
});

describe('createLogger', function () {
  it('writes one JSON line per call with t, level, msg and the fields', function () {
    const sink = memorySink();
    const log = createLogger(sink, new Redactor(), { daemon_pid: 42 });
    log.info('listening', { port: 8079 });
    log.warn('careful');
    assert.equal(sink.lines.length, 2);
    assert.ok(sink.lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')));
    const [a, b] = sink.lines.map((l) => JSON.parse(l));
    assert.ok(!Number.isNaN(Date.parse(a.t)), 't is an ISO timestamp');
    assert.deepEqual({ ...a, t: undefined }, { t: undefined, level: 'info', msg: 'listening', daemon_pid: 42, port: 8079 });
    assert.equal(b.level, 'warn');
    assert.equal(b.msg, 'careful');
  });

  it('merges child fields (child over parent, call fields over both)', function () {
    const sink = memorySink();
    const root = createLogger(sink, new Redactor(), { daemon_pid: 1 });
    const conn = root.child({ session: 's-1' }).child({ instance: 'vscode-a' });
    conn.info('connected', { user: 'u' });
    conn.child({ session: 's-2' }).error('overridden');
    root.info('root line');
    const [a, b, c] = sink.lines.map((l) => JSON.parse(l));
    assert.equal(a.daemon_pid, 1);
    assert.equal(a.session, 's-1');
    assert.equal(a.instance, 'vscode-a');
    assert.equal(a.user, 'u');
    assert.equal(b.session, 's-2');
    assert.equal(b.level, 'error');
    assert.equal(c.session, undefined, 'the parent is unchanged');
  });

  it('passes every line through the redactor (secrets, JWTs, bearer values in fields and messages)', function () {
    const sink = memorySink();
    const redactor = new Redactor();
    const secret = 'the-local-secret-0123456789';
    redactor.addSecret(secret);
    const log = createLogger(sink, redactor).child({ instance: secret });
    log.info(`hello with ${JWT}`, { header: 'Bearer abcdef', db: 'postgres://u:pw123456@h/db', nested: { s: secret } });
    const text = sink.lines.join('');
    assert.ok(!text.includes(secret));
    assert.ok(!text.includes(JWT));
    assert.ok(!text.includes('abcdef'));
    assert.ok(!text.includes('pw123456'));
    const line = JSON.parse(text);
    assert.equal(line.instance, '[redacted]');
    assert.equal(line.msg, 'hello with [redacted-jwt]');
  });

  it('keeps the line valid JSON when a field quotes a Bearer value ("Bearer xyz" inside a string)', function () {
    const sink = memorySink();
    createLogger(sink, new Redactor()).warn('upstream refused', { detail: 'header was "Bearer abc123"', other: 'x' });
    const line = JSON.parse(sink.lines[0]); // threw before: the redaction ate the \ of \"
    assert.equal(line.detail, 'header was "Bearer [redacted]"');
    assert.equal(line.other, 'x');
  });

  it('writes Errors as "Name: message"', function () {
    const sink = memorySink();
    createLogger(sink, new Redactor()).error('failed', { error: new TypeError('boom') });
    assert.equal(JSON.parse(sink.lines[0]).error, 'TypeError: boom');
  });

  it('drops lines below the minimum level (info by default)', function () {
    const sink = memorySink();
    createLogger(sink, new Redactor()).debug('noise');
    assert.equal(sink.lines.length, 0);
    const verbose = createLogger(sink, new Redactor(), {}, 'debug');
    verbose.debug('now shown');
    assert.equal(sink.lines.length, 1);
    const quiet = createLogger(sink, new Redactor(), {}, 'error').child({ a: 1 });
    quiet.warn('hidden');
    assert.equal(sink.lines.length, 1, 'children keep the minimum level');
  });
});

describe('openLogFile', function () {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-logunit-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates <dir>/exai-daemon-<pid>.log (0600), creating the directory, and appends', async function () {
    const logDir = path.join(dir, 'nested', 'logs');
    const sink = openLogFile(logDir, 4242);
    assert.equal(sink.file, path.join(logDir, 'exai-daemon-4242.log'));
    sink.write('one\n');
    await sink.close();
    const again = openLogFile(logDir, 4242);
    again.write('two\n');
    await again.close();
    assert.equal(fs.readFileSync(sink.file!, 'utf8'), 'one\ntwo\n');
    assert.equal(fs.statSync(sink.file!).mode & 0o777, 0o600);
  });

  it('maxBytes: past the bound the file moves to <file>.old (replacing the previous one); each file stays within the bound', async function () {
    const sink = openLogFile(dir, 7, { maxBytes: 1000 });
    const line = (i: number) => `${JSON.stringify({ i, pad: 'x'.repeat(80) })}\n`; // 100 bytes
    for (let i = 0; i < 35; i++) sink.write(line(i));
    await sink.close();
    assert.deepEqual(fs.readdirSync(dir).sort(), ['exai-daemon-7.log', 'exai-daemon-7.log.old']);
    const current = fs.readFileSync(sink.file!, 'utf8');
    const old = fs.readFileSync(`${sink.file}.old`, 'utf8');
    assert.equal(old, Array.from({ length: 10 }, (_, k) => line(20 + k)).join(''), 'the previous 10 lines, whole');
    assert.equal(current, Array.from({ length: 5 }, (_, k) => line(30 + k)).join(''), 'the newest lines');
    assert.equal(fs.statSync(`${sink.file}.old`).mode & 0o777, 0o600);
  });

  it('maxBytes: an outside truncation (copytruncate) is noticed before rotating; a file moved away (logrotate without SIGHUP) is simply replaced', async function () {
    const sink = openLogFile(dir, 8, { maxBytes: 1000 });
    const line = `${'y'.repeat(99)}\n`;
    for (let i = 0; i < 8; i++) sink.write(line);
    await sleep(50); // let the stream flush before truncating
    fs.truncateSync(sink.file!, 0);
    for (let i = 0; i < 8; i++) sink.write(line);
    await sleep(50);
    assert.equal(fs.existsSync(`${sink.file}.old`), false, 'no rotation: the file holds 800 bytes, not 1600');
    assert.equal(fs.statSync(sink.file!).size, 800);

    fs.renameSync(sink.file!, `${sink.file}.1`);
    for (let i = 0; i < 5; i++) sink.write(line);
    await sink.close();
    // Up to the bound the lines follow the moved file (the count may run a line ahead of the disk, never behind).
    const moved = fs.statSync(`${sink.file}.1`).size;
    assert.ok(moved >= 900 && moved <= 1000, `${moved} bytes in the moved file`);
    assert.equal(fs.readFileSync(sink.file!, 'utf8'), line.repeat(5 - (moved - 800) / 100), 'then a fresh file at the path');
    assert.equal(fs.existsSync(`${sink.file}.old`), false);
  });

  it('drops lines the disk has not taken past 4 MiB, and says how many in the next line written', async function () {
    const sink = openLogFile(dir, 9);
    const line = `${'z'.repeat(1023)}\n`;
    for (let i = 0; i < 6 * 1024; i++) sink.write(line); // 6 MiB in one tick: the stream cannot flush in between
    await sleep(200);
    sink.write('after\n');
    await sink.close();
    const lines = fs.readFileSync(sink.file!, 'utf8').split('\n').filter(Boolean);
    const kept = lines.filter((l) => l.startsWith('z')).length;
    assert.ok(kept <= 4 * 1024 && kept >= 4 * 1024 - 1, `${kept} lines kept`);
    const note = JSON.parse(lines.at(-2)!);
    assert.equal(note.msg, `dropped ${6 * 1024 - kept} log lines: the disk did not keep up`);
    assert.equal(lines.at(-1), 'after');
  });

  it('gives two processes two files in the same directory', async function () {
    const a = openLogFile(dir, 1001);
    const b = openLogFile(dir, 1002);
    await Promise.all([a.close(), b.close()]);
    assert.notEqual(a.file, b.file);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['exai-daemon-1001.log', 'exai-daemon-1002.log']);
  });
});
