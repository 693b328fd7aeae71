// The extension's pure parts: settings validation, status wording, refresh timing, OAuth redirect
// paths and auth error sentences. No vscode, no I/O.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { needsRefresh, refreshAheadSec, secondsLeft } from '../../src/auth/accounts';
import { CALLBACK_PATH, START_PATH, withPath } from '../../src/auth/flows/oauthPkce';
import { describeAuthError, isTerminalRefreshError } from '../../src/auth/supabase';
import { parseConfig, userValue } from '../../src/config';
import { describeStatus, formatDelta, usageTodayOf, type Status } from '../../src/ui/status';
import { AuthApiError, AuthRetryableFetchError } from '@supabase/supabase-js';

const project = { url: 'https://abc.supabase.co', anonKey: 'anon' };

describe('parseConfig (settings → config)', function () {
  it('is local mode with nothing set', function () {
    assert.deepEqual(parseConfig({}), { supabase: null, daemonUrl: null, idleExitSec: 600, problems: [] });
  });
  it('takes a project URL (trailing slash dropped) and anon key', function () {
    const c = parseConfig({ url: 'https://abc.supabase.co/', anonKey: ' key ' });
    assert.deepEqual(c.supabase, { url: 'https://abc.supabase.co', anonKey: 'key' });
    assert.deepEqual(c.problems, []);
  });
  const problems: [string, Parameters<typeof parseConfig>[0], RegExp][] = [
    ['a malformed URL', { url: 'not a url', anonKey: 'k' }, /is not a URL/],
    ['plain http to a remote host', { url: 'http://abc.supabase.co', anonKey: 'k' }, /must start with https:\/\//],
    ['a missing anon key', { url: 'https://abc.supabase.co' }, /anonKey is empty/],
    ['the service_role key as anon key', { url: 'https://abc.supabase.co', anonKey: `x.${Buffer.from('{"role":"service_role"}').toString('base64url')}.y` }, /service_role key/],
    ['an sb_secret_ key as anon key', { url: 'https://abc.supabase.co', anonKey: 'sb_secret_abc' }, /service_role key/],
    ['a non-ws daemon URL', { daemonUrl: 'http://host/' }, /must start with wss:\/\//],
    ['plain ws:// to a remote daemon', { daemonUrl: 'ws://exai.example.com/' }, /unencrypted ws:\/\/ to exai\.example\.com/],
  ];
  for (const [what, raw, message] of problems) {
    it(`reports ${what} as one sentence`, function () {
      const c = parseConfig(raw);
      assert.equal(c.problems.length, 1, JSON.stringify(c.problems));
      assert.match(c.problems[0], message);
    });
  }
  it('allows http:// to a local Supabase and ws:// to a loopback daemon', function () {
    assert.deepEqual(parseConfig({ url: 'http://127.0.0.1:54321', anonKey: 'k', daemonUrl: 'ws://127.0.0.1:8079/' }).problems, []);
    assert.deepEqual(parseConfig({ daemonUrl: 'ws://[::1]:8079/' }).problems, []);
  });
  it('converts the idle exit to seconds', function () {
    assert.equal(parseConfig({ idleExitMinutes: 0.5 }).idleExitSec, 30);
    assert.equal(parseConfig({ idleExitMinutes: 0 }).idleExitSec, 0);
  });
});

describe("where a window's tokens go: the user's settings only", function () {
  const manifest = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8'));
  const connectionSettings = ['exai.supabase.url', 'exai.supabase.anonKey', 'exai.daemon.url'];

  it('userValue takes the user value, else the default; never a workspace or folder value', function () {
    assert.equal(userValue({ defaultValue: '', globalValue: 'wss://team.example/', workspaceValue: 'wss://evil.example/', workspaceFolderValue: 'wss://evil2.example/' }), 'wss://team.example/');
    assert.equal(userValue({ defaultValue: '', workspaceValue: 'wss://evil.example/', workspaceFolderValue: 'wss://evil2.example/' }), '');
    assert.equal(userValue<string>(undefined), undefined);
  });
  it('the manifest gives the project and daemon settings application scope (VS Code ignores them in workspace and folder settings)', function () {
    for (const key of connectionSettings) assert.equal(manifest.contributes.configuration.properties[key].scope, 'application', key);
  });
  it('in Restricted Mode, workspace values of every EXAI setting are ignored too', function () {
    const trust = manifest.capabilities.untrustedWorkspaces;
    assert.equal(trust.supported, 'limited');
    assert.deepEqual([...trust.restrictedConfigurations].sort(), Object.keys(manifest.contributes.configuration.properties).sort());
  });
});

describe('describeStatus (status bar wording)', function () {
  const now = 1_700_000_000_000;
  it('connected: who in the text, an accessible label, a table tooltip with daemon, session and expiry', function () {
    const v = describeStatus({ kind: 'connected', who: 'jazeel@example.com', daemon: 'ws://127.0.0.1:8079/', sessionId: 's-1', tokenExpiresAt: now / 1000 + 1800, serverVersion: '0.1.0', mode: 'supabase' }, now);
    assert.equal(v.text, '$(plug) EXAI: jazeel@example.com');
    assert.equal(v.ariaLabel, 'EXAI connected as jazeel@example.com');
    assert.match(v.tooltip, /connected as \*\*jazeel@example\\\.com\*\*/);
    assert.match(v.tooltip, /Session \| `s-1`/);
    assert.match(v.tooltip, /expires in 30 min/);
    assert.deepEqual(v.actions, ['switchUser', 'showSessions', 'reconnect', 'signOut', 'showLog']);
    assert.equal(v.isError, false);
  });
  it('signed out offers sign-in; with a reason it warns', function () {
    assert.deepEqual(describeStatus({ kind: 'signed_out' }).actions.slice(0, 1), ['signIn']);
    const v = describeStatus({ kind: 'signed_out', reason: 'jazeel@example.com was signed out.' });
    assert.equal(v.isWarning, true);
    assert.match(v.tooltip, /was signed out/);
  });
  it('errors are short in the bar and whole in the tooltip', function () {
    const message = 'This account already has 5 open connections (the limit is 5). Close another VS Code window.';
    const v = describeStatus({ kind: 'error', who: null, message, actions: ['showSessions'] });
    assert.ok(v.text.length < 60, v.text);
    assert.match(v.tooltip, /limit is 5/);
    assert.equal(v.isError, true);
    assert.deepEqual(v.actions, ['showSessions']);
  });
  it('reconnecting says when the next try is', function () {
    const v = describeStatus({ kind: 'reconnecting', who: null, attempt: 3, delayMs: 4200, reason: 'daemon went away' } as Status);
    assert.match(v.tooltip, /Retry 3 in 4 s/);
  });
  it('idle: "idle — reconnects when used", why in the tooltip, Reconnect first; neither error nor warning', function () {
    const v = describeStatus({ kind: 'idle', who: 'jazeel@example.com', daemon: 'ws://127.0.0.1:8079/' });
    assert.equal(v.text, '$(debug-pause) EXAI: idle — reconnects when used');
    assert.equal(v.ariaLabel, 'EXAI idle as jazeel@example.com: reconnects when used');
    assert.match(v.tooltip, /closed this window's connection because nothing used it for its idle timeout/);
    assert.match(v.tooltip, /reconnects by itself the next time you use it \(a tool call, Try a Tool, Show Sessions\)/);
    assert.deepEqual(v.actions, ['reconnect', 'showSessions', 'showLog']);
    assert.equal(v.isError || v.isWarning, false);
  });
  it("connected: the tooltip shows the window user's usage today, with the budget and its reset when the daemon sets one", function () {
    const at = Date.parse('2026-12-05T20:48:00Z');
    const base = { kind: 'connected', who: 'jazeel@example.com', daemon: 'ws://127.0.0.1:8079/', sessionId: 's-1', tokenExpiresAt: at / 1000 + 1800, serverVersion: '0.1.0', mode: 'supabase' } as const;
    assert.doesNotMatch(describeStatus(base, at).tooltip, /Usage today/, 'no usage known: no line');
    const limited = describeStatus({ ...base, usage: { totalTokens: 12_345, calls: 3, budget: { limit: 100_000, resetsAt: '2026-12-06T00:00:00.000Z' } } }, at);
    assert.match(limited.tooltip, /\n\| Usage today \| 12,345 tokens in 3 calls of 100,000 \(resets 00:00 UTC, in 3 h 12 min\) \|$/);
    const unlimited = describeStatus({ ...base, usage: { totalTokens: 40, calls: 1, budget: null } }, at);
    assert.match(unlimited.tooltip, /\| Usage today \| 40 tokens in 1 call \|$/);
    assert.equal(unlimited.text, '$(plug) EXAI: jazeel@example.com', 'the bar itself stays short');
  });
  it("reads the daemon's usage report for the tooltip; anything else is no usage", function () {
    const report = {
      day: '2026-12-05', month: '2026-12', today: { calls: 3, input_tokens: 10_000, output_tokens: 2_345, total_tokens: 12_345 },
      this_month: { calls: 9, input_tokens: 1, output_tokens: 1, total_tokens: 2 }, by_model: [], in_flight: { calls: 0, held_tokens: 0 },
      daily_budget: { limit: 100_000, used: 12_345, remaining: 87_655, resets_at: '2026-12-06T00:00:00.000Z', resets: '00:00 UTC, in 3 h 12 min' },
    };
    assert.deepEqual(usageTodayOf(JSON.stringify(report)), { totalTokens: 12_345, calls: 3, budget: { limit: 100_000, resetsAt: '2026-12-06T00:00:00.000Z' } });
    assert.deepEqual(usageTodayOf(JSON.stringify({ ...report, daily_budget: null })), { totalTokens: 12_345, calls: 3, budget: null });
    assert.equal(usageTodayOf('There is no tool named "usage".'), null);
    assert.equal(usageTodayOf('{"today": {}}'), null);
  });
  it('formats token lifetimes', function () {
    assert.equal(formatDelta(-1), 'expired');
    assert.equal(formatDelta(45_000), 'expires in 45 s');
    assert.equal(formatDelta(3 * 3600_000), 'expires in 3 h');
  });
});

describe('refresh timing', function () {
  it('refreshes 2 minutes ahead for hour-long tokens, a third ahead for short ones', function () {
    assert.equal(refreshAheadSec({ expires_in: 3600 }), 120);
    assert.equal(refreshAheadSec({ expires_in: 30 }), 10);
    assert.equal(refreshAheadSec({ expires_in: 1 }), 1);
  });
  it('needsRefresh inside the margin only', function () {
    const now = 1_000_000_000_000;
    assert.equal(needsRefresh({ expires_at: now / 1000 + 3000, expires_in: 3600 }, now), false);
    assert.equal(needsRefresh({ expires_at: now / 1000 + 100, expires_in: 3600 }, now), true);
    assert.equal(secondsLeft({ expires_at: now / 1000 + 5 }, now), 5);
  });
});

describe('OAuth redirect through asExternalUri', function () {
  it('keeps a loopback callback as it is, and derives the start URL beside it', function () {
    assert.equal(withPath(`http://127.0.0.1:4567${CALLBACK_PATH}`, CALLBACK_PATH), `http://127.0.0.1:4567${CALLBACK_PATH}`);
    assert.equal(withPath(`http://127.0.0.1:4567${CALLBACK_PATH}`, START_PATH), `http://127.0.0.1:4567${START_PATH}`);
  });
  it("appends the path that code-server's /proxy/<port>/ URL drops", function () {
    assert.equal(withPath('http://cs.example:8080/proxy/4567/', CALLBACK_PATH), `http://cs.example:8080/proxy/4567${CALLBACK_PATH}`);
    assert.equal(withPath('http://cs.example:8080/proxy/4567/', START_PATH), `http://cs.example:8080/proxy/4567${START_PATH}`);
  });
});

describe('auth error sentences', function () {
  const api = (code: string, status = 400) => new AuthApiError('x', status, code);
  it('says what happened and what to do', function () {
    assert.equal(describeAuthError(api('invalid_credentials'), project), 'Wrong email or password.');
    assert.match(describeAuthError(api('email_not_confirmed'), project, 'a@b.c'), /Confirm your email first: .* a@b\.c/);
    assert.match(describeAuthError(new AuthRetryableFetchError('fetch failed', 0), project), /Can't reach Supabase at https:\/\/abc\.supabase\.co/);
    assert.match(describeAuthError(new TypeError('fetch failed'), project), /Can't reach Supabase/);
    assert.match(describeAuthError(api('otp_expired', 403), project), /Request a new code/);
    assert.match(describeAuthError(api('refresh_token_already_used'), project), /Sign in again/);
  });
  it('treats only final refresh errors as terminal', function () {
    assert.equal(isTerminalRefreshError(api('refresh_token_already_used')), true);
    assert.equal(isTerminalRefreshError(api('session_not_found')), true);
    assert.equal(isTerminalRefreshError(new AuthRetryableFetchError('down', 503)), false);
    assert.equal(isTerminalRefreshError(api('over_request_rate_limit', 429)), false);
  });
});
