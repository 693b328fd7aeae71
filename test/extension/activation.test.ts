// What VS Code's activation of the extension costs (issue 14: activate() ≤ 50 ms, docs/performance.md):
// the built dist/extension.js (the production bundle when npm test has packaged, else the dev build),
// required and activated in this process against a recording stand-in for the `vscode` module.
// - Loading it parses only our own code: supabase-js and ws are separate bundles (dist/supabase.js,
//   dist/ws.js) required on first use (a sign-in, a connection), and zod is not in it at all.
// - activate() registers everything VS Code asks for before it returns, and leaves connecting (finding
//   or starting the daemon, reading the accounts) to the next turn of the event loop.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import Module from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { ExaiApi } from '../../src/extension';
import { waitFor } from '../helpers/wait';

const ROOT = path.resolve(__dirname, '../../..');
const DIST = path.join(ROOT, 'dist');
const BUNDLE = path.join(DIST, 'extension.js');
/** The old single bundle was 828 KiB minified (zod 443, supabase-js ~250, ws 48); our own code is ~80 KiB minified, ~140 KiB not. */
const MAX_BUNDLE_BYTES = 200 * 1024;

interface Recorded {
  statusBarItems: string[];
  commands: string[];
  handlers: Map<string, (...args: unknown[]) => unknown>;
  errors: string[];
  /** What showInputBox answers, in order. */
  inputs: string[];
  mcpProviders: string[];
  authProviders: string[];
}

/** A stand-in for the parts of the `vscode` API that activation touches; it records the registrations. */
function fakeVscode(settings: Record<string, unknown>, recorded: Recorded) {
  const disposable = () => ({ dispose() {} });
  class EventEmitter<T> {
    private listeners = new Set<(e: T) => void>();
    event = (listener: (e: T) => void) => {
      this.listeners.add(listener);
      return { dispose: () => void this.listeners.delete(listener) };
    };
    fire(e: T) {
      for (const l of this.listeners) l(e);
    }
    dispose() {
      this.listeners.clear();
    }
  }
  const channel = { info() {}, warn() {}, error() {}, show() {}, dispose() {} };
  return {
    EventEmitter,
    Disposable: class { constructor(private readonly fn: () => void) {} dispose() { this.fn(); } },
    MarkdownString: class { supportThemeIcons = false; constructor(readonly value: string) {} },
    ThemeColor: class { constructor(readonly id: string) {} },
    StatusBarAlignment: { Left: 1, Right: 2 },
    UIKind: { Desktop: 1, Web: 2 },
    env: { uiKind: 2, remoteName: undefined },
    window: {
      createOutputChannel: () => channel,
      createStatusBarItem: (id: string) => {
        recorded.statusBarItems.push(id);
        return { show() {}, hide() {}, dispose() {} };
      },
      showWarningMessage: async () => undefined,
      showErrorMessage: async (message: string) => void recorded.errors.push(message),
      showInformationMessage: async () => undefined,
      showQuickPick: async (items: unknown[]) => items[0],
      showInputBox: async () => recorded.inputs.shift(),
      withProgress: (_options: unknown, task: (progress: unknown, token: unknown) => unknown) =>
        task({ report() {} }, { onCancellationRequested: () => ({ dispose() {} }) }),
    },
    ProgressLocation: { Notification: 15 },
    workspace: {
      getConfiguration: () => ({
        inspect: (key: string) => ({ globalValue: settings[key] }),
        get: (key: string) => settings[key],
      }),
      onDidChangeConfiguration: disposable,
    },
    commands: {
      registerCommand: (id: string, handler: (...args: unknown[]) => unknown) => {
        recorded.commands.push(id);
        recorded.handlers.set(id, handler);
        return disposable();
      },
      executeCommand: async () => undefined,
    },
    lm: {
      registerMcpServerDefinitionProvider: (id: string) => {
        recorded.mcpProviders.push(id);
        return disposable();
      },
    },
    authentication: {
      registerAuthenticationProvider: (id: string) => {
        recorded.authProviders.push(id);
        return disposable();
      },
    },
  };
}

interface Activated {
  api: ExaiApi;
  recorded: Recorded;
  /** Files outside node's built-ins that requiring the bundle and activating loaded (paths relative to the repository). */
  loadedFiles: () => string[];
  dispose(): void;
}

/** Requires dist/extension.js afresh with `vscode` replaced, and calls activate() once. */
function activateBundle(settings: Record<string, unknown>): Activated {
  const recorded: Recorded = { statusBarItems: [], commands: [], handlers: new Map(), errors: [], inputs: [], mcpProviders: [], authProviders: [] };
  const vscode = fakeVscode(settings, recorded);
  const before = new Set(Object.keys(require.cache));
  for (const file of fs.readdirSync(DIST)) delete require.cache[path.join(DIST, file)];
  const loader = Module as unknown as { _load(request: string, ...rest: unknown[]): unknown };
  const load = loader._load;
  loader._load = function (request: string, ...rest: unknown[]) {
    return request === 'vscode' ? vscode : load.call(this, request, ...rest);
  };
  const storage = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-activation-'));
  const subscriptions: { dispose(): void }[] = [];
  let api: ExaiApi;
  try {
    const extension = require(BUNDLE) as { activate(context: unknown): ExaiApi };
    const memento = new Map<string, unknown>();
    api = extension.activate({
      globalStorageUri: { fsPath: storage },
      subscriptions,
      secrets: { get: async () => undefined, store: async () => {}, delete: async () => {}, onDidChange: () => ({ dispose() {} }) },
      workspaceState: { get: (k: string) => memento.get(k), update: async (k: string, v: unknown) => void memento.set(k, v) },
      asAbsolutePath: (p: string) => path.join(ROOT, p),
    });
  } finally {
    loader._load = load;
  }
  return {
    api,
    recorded,
    loadedFiles: () => Object.keys(require.cache).filter((f) => !before.has(f)).map((f) => path.relative(ROOT, f)),
    dispose: () => {
      for (const s of subscriptions) s.dispose();
      fs.rmSync(storage, { recursive: true, force: true });
    },
  };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('activating the extension (dist/extension.js)', function () {
  before(function () {
    assert.ok(fs.existsSync(BUNDLE), `build first: node esbuild.js (${BUNDLE})`);
  });

  it('is a small bundle of our own code: supabase-js, ws and zod are not in it', function () {
    const size = fs.statSync(BUNDLE).size;
    assert.ok(size <= MAX_BUNDLE_BYTES, `dist/extension.js is ${Math.round(size / 1024)} KiB; at most ${MAX_BUNDLE_BYTES / 1024} KiB (every byte is parsed while VS Code activates the extension)`);
    for (const lazy of ['supabase.js', 'ws.js']) assert.ok(fs.existsSync(path.join(DIST, lazy)), `dist/${lazy} is built beside it`);
  });

  it('loads neither supabase-js nor ws while loading and activating; supabase-js on the first sign-in', async function () {
    // Supabase mode, signed out; the project URL is a closed loopback port.
    const run = activateBundle({ 'supabase.url': 'http://127.0.0.1:9', 'supabase.anonKey': 'anon-key-for-the-test' });
    try {
      await waitFor(() => run.api.status().kind === 'signed_out', 10_000, 'the signed-out status');
      assert.deepEqual(run.loadedFiles(), [path.join('dist', 'extension.js')]);
      run.recorded.inputs.push('jazeel@example.com', 'a-password');
      await run.recorded.handlers.get('exai.signIn')!();
      assert.deepEqual(run.recorded.errors, ["EXAI: Can't reach Supabase at http://127.0.0.1:9. Check your network connection and the exai.supabase.url setting."]);
      assert.deepEqual(run.loadedFiles(), [path.join('dist', 'extension.js'), path.join('dist', 'supabase.js')]);
    } finally {
      run.dispose();
    }
  });

  it('registers the status bar item, commands, MCP and authentication providers within activate(), and starts connecting only after it returns', async function () {
    const supabase = activateBundle({ 'supabase.url': 'http://127.0.0.1:9', 'supabase.anonKey': 'anon-key-for-the-test' });
    try {
      assert.deepEqual(supabase.recorded.statusBarItems, ['exai.connection']);
      assert.deepEqual(supabase.recorded.mcpProviders, ['exai.mcpServers']);
      assert.deepEqual(supabase.recorded.authProviders, ['exai']);
      for (const c of ['exai.signIn', 'exai.signOut', 'exai.switchUser', 'exai.reconnect', 'exai.showLog', 'exai.showSessions', 'exai.setProviderKey']) {
        assert.ok(supabase.recorded.commands.includes(c), c);
      }
    } finally {
      supabase.dispose();
    }
    // A bad setting makes the first step of connecting say so at once: it has not run when activate() returns, it has one turn later.
    const bad = activateBundle({ 'daemon.url': 'not a url' });
    try {
      assert.equal(bad.api.status().kind, 'connecting');
      await nextTurn();
      assert.equal(bad.api.status().kind, 'error');
    } finally {
      bad.dispose();
    }
  });
});
