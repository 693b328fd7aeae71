// One "VS Code window" without VS Code: Accounts + WindowConnection as the extension wires them,
// run as its own process so a test can suspend it (SIGSTOP) like a laptop going to sleep.
// Prints one JSON line per status change. Usage: node window.js <json options>
import fs from 'node:fs';
import path from 'node:path';
import { Accounts } from '../../../src/auth/accounts';
import { passwordFlow } from '../../../src/auth/flows/password';
import { fileKeyProvider, SharedStore } from '../../../src/auth/sharedStore';
import type { WindowUser } from '../../../src/auth/windowUser';
import { parseConfig } from '../../../src/config';
import { WindowConnection } from '../../../src/daemon/windowConnection';

const opts = JSON.parse(process.argv[2]) as { dir: string; supabaseUrl: string; anonKey: string; daemonUrl: string; email: string; password: string };
const print = (event: unknown) => process.stdout.write(JSON.stringify(event) + '\n');
const log = { info: (m: string) => print({ log: m }), warn: (m: string) => print({ log: m }), error: (m: string) => print({ log: m }), addSecret() {} };

async function main() {
  fs.mkdirSync(opts.dir, { recursive: true });
  const store = new SharedStore(path.join(opts.dir, 'accounts'), fileKeyProvider(path.join(opts.dir, 'keys', 'store.key')));
  const accounts = new Accounts({ store, lockDir: path.join(opts.dir, 'locks'), project: { url: opts.supabaseUrl, anonKey: opts.anonKey }, log });
  const account = await accounts.signIn((client) => passwordFlow(opts.email, opts.password)(client, new AbortController().signal));
  // The window's user: the account just signed in (WindowUser without vscode's Memento).
  const windowUser = { id: account.id, resolve: async () => account, onDidChange: () => ({ dispose() {} }) } as unknown as WindowUser;
  const config = parseConfig({ url: opts.supabaseUrl, anonKey: opts.anonKey, daemonUrl: opts.daemonUrl });
  const connection = new WindowConnection({
    config, accounts, windowUser, instance: `window-${process.pid}`, version: '0.0.0', log,
    launcher: { serverJs: '', nodePath: process.execPath, stateDir: opts.dir, logDir: opts.dir, expectedVersion: '0.0.0', idleExitSec: 0 },
    onStatus: (status) => print({ status }),
    notify: (message) => print({ notify: message }),
  });
  await connection.start();
}

main().catch((err) => {
  print({ fatal: String(err) });
  process.exit(1);
});
