// A PostgreSQL 15 cluster that one test file owns: initdb into a temp directory, its own loopback
// port and socket directory, so the test can restart, stop and start it without touching the
// shared cluster of scripts/postgres.sh. Its database `exai` holds the same schema as every test
// database (test/helpers/pg.ts applySchema). destroy() (also run at process exit) stops it and
// removes the directory.
//
// initdb and postgres refuse to run as root; as root (CI, the dev machines) every cluster command
// runs as the `postgres` OS user (runuser), in a directory that user owns.
import { execFile, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { applySchema } from './pg';

const BIN = process.env.EXAI_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const SUPERUSER = 'exai_test';
const DATABASE = 'exai';
/** Bound on every pg_ctl / initdb call (a loaded 2-core machine is slow, never this slow). */
const COMMAND_TIMEOUT_MS = 60_000;

export interface PgCluster {
  port: number;
  /** The daemon's DATABASE_URL: the superuser on database `exai`. */
  url: string;
  /** Runs SQL as the superuser on a fresh connection (so it works across restarts); set-up and inspection only. */
  query<T = any>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Inserts auth.users rows. */
  addUser(id: string, email: string): Promise<void>;
  /** `pg_ctl restart -m fast`: every backend is terminated (57P01), then the server accepts connections again. */
  restart(): Promise<void>;
  /** `pg_ctl stop -m fast`: connections are refused until start(). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Server log so far (for failure messages). */
  serverLog(): string;
  /** Stops the server (immediate) and removes its directory. Safe to call twice. */
  destroy(): Promise<void>;
}

export async function startPgCluster(): Promise<PgCluster> {
  if (!fs.existsSync(path.join(BIN, 'initdb'))) {
    throw new Error(`no PostgreSQL 15 binaries in ${BIN}: run scripts/postgres.sh (installs postgresql-15) or set EXAI_TEST_PG_BIN`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exai-pgcluster-'));
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { uid, gid } = postgresUser();
    fs.chownSync(dir, uid, gid);
  }
  fs.chmodSync(dir, 0o700);

  /** Runs a cluster binary as the cluster's owner, in its directory; rejects with the output on failure. */
  const run = (bin: string, args: string[]): Promise<string> => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(BIN, bin), ...args]] : [path.join(BIN, bin), args];
    return new Promise((resolve, reject) => {
      execFile(file, argv, { cwd: dir, timeout: COMMAND_TIMEOUT_MS }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${bin} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}\n--- server log ---\n${tail(logFile)}`));
        else resolve(stdout + stderr);
      });
    });
  };
  const pgCtl = (...args: string[]) => run('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', String(COMMAND_TIMEOUT_MS / 1000), ...args]);

  // Sync: it runs from process.on('exit') too, when a failed test never reached destroy().
  let destroyed = false;
  const destroySync = () => {
    if (destroyed) return;
    destroyed = true;
    process.removeListener('exit', destroySync);
    const [file, argv] = asRoot
      ? ['runuser', ['-u', 'postgres', '--', path.join(BIN, 'pg_ctl'), '-D', dataDir, '-m', 'immediate', '-w', 'stop']]
      : [path.join(BIN, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']];
    if (fs.existsSync(path.join(dataDir, 'postmaster.pid'))) spawnSync(file, argv, { cwd: dir, stdio: 'ignore', timeout: COMMAND_TIMEOUT_MS });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', destroySync);

  const password = crypto.randomBytes(12).toString('hex');
  let port = 0;
  try {
    const pwFile = path.join(dir, 'pw');
    fs.writeFileSync(pwFile, password + '\n', { mode: 0o600 });
    if (asRoot) fs.chownSync(pwFile, postgresUser().uid, postgresUser().gid);
    await run('initdb', ['-D', dataDir, '-U', SUPERUSER, `--pwfile=${pwFile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-instructions']);
    fs.rmSync(pwFile);
    // A throwaway cluster: durability off (faster on a loaded machine), small memory, loopback only.
    const settings = [
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${dir}'`,
      'fsync = off', 'synchronous_commit = off', 'full_page_writes = off',
      'shared_buffers = 16MB', 'max_connections = 60',
    ];
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `\n# test/helpers/pgCluster.ts\n${settings.join('\n')}\n`);
    // A free port can be taken between the probe and the start: try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `port = ${port}\n`);
      try {
        await pgCtl('start');
        break;
      } catch (err) {
        if (attempt >= 3 || !/already in use/i.test(tail(logFile))) throw err;
      }
    }
    const admin = new Client({ host: '127.0.0.1', port, user: SUPERUSER, password, database: 'postgres' });
    await admin.connect();
    try {
      await admin.query(`create database ${DATABASE}`);
    } finally {
      await admin.end();
    }
  } catch (err) {
    destroySync();
    throw err;
  }

  const url = `postgres://${SUPERUSER}:${password}@127.0.0.1:${port}/${DATABASE}`;
  const query = async <T>(sql: string, params?: unknown[]): Promise<T[]> => {
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    client.on('error', () => {}); // a restart may end it between queries; the query itself still rejects
    await client.connect();
    try {
      return (await client.query(sql, params as any[])).rows as T[];
    } finally {
      await client.end().catch(() => {});
    }
  };
  {
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      await applySchema(client);
    } finally {
      await client.end();
    }
  }

  return {
    port,
    url,
    query,
    async addUser(id, email) {
      await query('insert into auth.users (id, email) values ($1, $2)', [id, email]);
    },
    async restart() {
      await pgCtl('-m', 'fast', 'restart');
    },
    async stop() {
      await pgCtl('-m', 'fast', 'stop');
    },
    async start() {
      await pgCtl('start');
    },
    serverLog: () => tail(logFile),
    async destroy() {
      destroySync();
    },
  };
}

function postgresUser(): { uid: number; gid: number } {
  const out = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gidOut = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  const uid = Number(out.stdout.trim());
  const gid = Number(gidOut.stdout.trim());
  if (out.status !== 0 || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error('running as root, but there is no `postgres` OS user to run the test cluster as (install postgresql-15: scripts/postgres.sh)');
  }
  return { uid, gid };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The last 4 KB of a file ('' when missing). */
function tail(file: string): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.slice(-4096);
  } catch {
    return '';
  }
}
