// Window B of the two-window MCP suite (run by test/e2e/mcpInHost.test.ts, beside windowA.test.ts):
// while window A's MCP server runs as Jazeel, this window's runs as Michelle.
import assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { ExaiApi } from '../../../src/extension';
import { answer, restoreUi, until } from '../ui';
import { env, mcpRecords, signal, startExaiUntilListed, waitForSignal, whoamiEmail } from './vscodeMcp';

const JAZEEL = { email: 'jazeel@example.com' };
const MICHELLE = { email: 'michelle@example.com', password: env('EXAI_TEST_MICHELLE_PASSWORD') };

describe('window B: another user in another window at the same time', function () {
  let api: ExaiApi;
  const status = () => api.status();
  const connectedAs = (email: string) => until(`connected as ${email}`, () => status().kind === 'connected' && (status() as any).who === email, 30_000);

  before(async function () {
    api = await vscode.extensions.getExtension<ExaiApi>('exai.exai-vscode')!.activate();
  });
  afterEach(restoreUi);

  it("whoami returns Michelle here while window A's server answers as Jazeel", async function () {
    this.timeout(180_000);
    await waitForSignal('a-ready');
    answer({ pick: ['Email and password'], input: [MICHELLE.email, MICHELLE.password] });
    await vscode.commands.executeCommand('exai.signIn');
    await connectedAs(MICHELLE.email);
    restoreUi();
    signal('b-signed-in');
    await startExaiUntilListed();
    const from = Date.now();
    for (let i = 0; i < 3; i++) assert.equal(await whoamiEmail(), MICHELLE.email);
    // Window A kept calling as Jazeel meanwhile: two windows, two users, one daemon.
    await until("window A's calls as Jazeel", async () => (await mcpRecords()).some((r) => r.at >= from && r.rpc === 'tools/call' && r.bearer === JAZEEL.email), 30_000);
    signal('b-done');
  });
});
