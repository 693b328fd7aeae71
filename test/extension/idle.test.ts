// A window whose connection the daemon closed as idle (4005): the status bar says so ("idle —
// reconnects when used"), nothing pops up, nothing reconnects by itself, and the next use (a tool
// call, Try a Tool's list, Show Sessions) reconnects and goes through. WindowConnection as the
// extension wires it (local mode: it starts the bundled daemon itself), against the real daemon
// with a 1 s idle timeout.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readDiscovery } from '../../server/auth/localMode';
import { parseConfig } from '../../src/config';
import { WindowConnection } from '../../src/daemon/windowConnection';
import { describeStatus, type Status } from '../../src/ui/status';
import { DAEMON_JS } from '../helpers/daemon';
import { sleep, waitFor } from '../helpers/wait';
import pkg from '../../package.json';

describe('an idle-closed window (WindowConnection, real daemon with MCP_SESSION_TIMEOUT=1)', function () {
  this.timeout(60_000);
  let dir: string;
  let connection: WindowConnection;
  const statuses: Status[] = [];
  const notifications: string[] = [];
  const warnings: string[] = [];

  const until = (what: string, check: () => boolean, ms = 15_000) =>
    waitFor(check, ms, what, { everyMs: 25, context: () => `last statuses: ${JSON.stringify(statuses.slice(-5))}` });
  const last = () => statuses[statuses.length - 1];

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-idle-'));
    // The launcher passes the daemon only whitelisted variables: set the idle timeout in a wrapper.
    const serverJs = path.join(dir, 'server.js');
    fs.writeFileSync(serverJs, `process.env.MCP_SESSION_TIMEOUT = '1';\nrequire(${JSON.stringify(DAEMON_JS)});\n`);
    connection = new WindowConnection({
      config: parseConfig({}), accounts: null, windowUser: null, instance: 'vscode-idle-test', version: pkg.version,
      log: { info() {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m), addSecret() {} },
      launcher: { serverJs, nodePath: process.execPath, stateDir: path.join(dir, 'daemon'), logDir: path.join(dir, 'logs'), expectedVersion: pkg.version, idleExitSec: 60 },
      onStatus: (s) => statuses.push(s),
      notify: (m) => notifications.push(m),
    });
    await connection.start();
  });
  after(async function () {
    connection?.dispose();
    const pid = readDiscovery(path.join(dir, 'daemon'))?.pid;
    if (pid) try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    await sleep(300);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('shows "idle — reconnects when used" with a tooltip saying why; no popup, no reconnect by itself', async function () {
    await until('connected', () => last()?.kind === 'connected');
    await until('idle', () => last()?.kind === 'idle');
    await sleep(2500); // more than two idle timeouts: a reconnect loop would show here
    assert.deepEqual(statuses.map((s) => s.kind), ['connecting', 'connected', 'idle']);
    assert.deepEqual(notifications, [], 'an idle close must not pop anything up');
    assert.deepEqual(warnings, []);
    const view = describeStatus(last());
    assert.equal(view.text, '$(debug-pause) EXAI: idle — reconnects when used');
    assert.match(view.tooltip, /closed this window's connection because nothing used it for its idle timeout/);
    assert.match(view.tooltip, /reconnects by itself the next time you use it/);
    assert.equal(view.isError, false);
  });

  it('the next tool call reconnects and goes through', async function () {
    const result = await connection.callTool('whoami');
    assert.ok(result.ok, JSON.stringify(result));
    assert.match(result.outputs[0].text, /local:/);
    assert.equal(last().kind, 'connected');
    assert.deepEqual(statuses.map((s) => s.kind).slice(-3), ['idle', 'connecting', 'connected']);
  });

  it('so do Try a Tool (its tool list) and Show Sessions (the sessions tool) after the next idle close', async function () {
    await until('idle again', () => last()?.kind === 'idle');
    const tools = await connection.listTools();
    assert.ok(tools.some((t) => t.name === 'sessions'));
    await until('idle again', () => last()?.kind === 'idle');
    const sessions = await connection.callTool('sessions');
    assert.ok(sessions.ok, JSON.stringify(sessions));
    assert.deepEqual(notifications, []);
    assert.deepEqual(warnings, []);
  });
});
