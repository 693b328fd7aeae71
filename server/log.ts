// The daemon's log: one file per daemon process (two daemons never share a file), one JSON object
// per line, each tagged with the connection's client instance and session id. Every line passes
// through redact(): registered secrets, JWTs and bearer credentials never reach the disk. The file
// has a byte bound (size rotation to `<file>.old`), and LogBudget bounds what strangers can make
// the daemon write.
import fs from 'node:fs';
import path from 'node:path';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

// Three base64url segments starting with a JSON header ("eyJ" = '{"'): any JWT, signed or not.
const JWT_PATTERN = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g;
const BEARER_PATTERN = /(bearer\s+)[^\s"',;\\]+/gi; // stops at a backslash: in a JSON line it escapes what follows
// Connection strings: keep the host, drop the password.
const URL_PASSWORD_PATTERN = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/\s"']+:)[^@\s"']+@/gi;

export class Redactor {
  private readonly secrets = new Set<string>();

  /** Adds a value that must never be written anywhere (the local secret, a database password). */
  addSecret(value: string | null | undefined): void {
    if (value && value.length >= 8) this.secrets.add(value);
  }

  /** Stops redacting a value that is no longer used (bounds the set when keys are replaced at run time). */
  removeSecret(value: string): void {
    this.secrets.delete(value);
  }

  redact(text: string): string {
    let out = text.replace(JWT_PATTERN, '[redacted-jwt]').replace(BEARER_PATTERN, '$1[redacted]').replace(URL_PASSWORD_PATTERN, '$1[redacted]@');
    for (const secret of this.secrets) out = out.split(secret).join('[redacted]');
    return out;
  }
}

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger whose lines all carry these fields (e.g. instance and session of one connection). */
  child(fields: Fields): Logger;
}

export interface LogSink {
  readonly file: string | null;
  write(line: string): void;
  close(): Promise<void>;
}

export interface FileLogSink extends LogSink {
  readonly file: string;
  /**
   * Closes the file and opens `file` again (creating it if it was moved away): after logrotate
   * renamed it, new lines go to a fresh file at the same path (the daemon does this on SIGHUP).
   */
  reopen(): void;
}

/** Lines the disk has not taken yet (a stalled or slow disk): past this, lines are dropped and counted. */
const MAX_UNWRITTEN_BYTES = 4 * 1024 * 1024;

export interface LogFileOptions {
  /**
   * The file's byte bound: a line that would take it past this first moves the file to
   * `<file>.old` (replacing the one before) and starts a new one, so one process never has more
   * than about twice this on disk. Unset: no bound (rotation is then logrotate's job alone).
   */
  maxBytes?: number;
}

/**
 * Opens `<dir>/exai-daemon-<pid>.log` (mode 0600). Append mode (O_APPEND): after an outside
 * truncation (logrotate's copytruncate) the next line lands at the new end, not at the old offset.
 */
export function openLogFile(dir: string, pid = process.pid, opts: LogFileOptions = {}): FileLogSink {
  const file = path.join(dir, `exai-daemon-${pid}.log`);
  const maxBytes = opts.maxBytes ?? Infinity;
  // Opened synchronously, so a rotation right after opening cannot race the open.
  const open = () => {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const fd = fs.openSync(file, 'a', 0o600);
    const stream = fs.createWriteStream(file, { fd, flags: 'a' });
    stream.on('error', (err) => process.stderr.write(`exai-daemon: cannot write log ${file}: ${err.message}\n`));
    return { stream, fd, size: fs.fstatSync(fd).size };
  };
  let current = open();
  let dropped = 0;
  /** Streams of replaced files still writing their last lines; close() waits for them too. */
  const ending = new Set<Promise<void>>();

  /** Starts a new file at `file`, first moving the current one to `<file>.old` when `rotate`. */
  const replace = (rotate: boolean): boolean => {
    const old = current;
    try {
      if (rotate) renameIfPresent(file, `${file}.old`);
      current = open();
    } catch (err) {
      // Keep writing to the file already open.
      process.stderr.write(`exai-daemon: cannot ${rotate ? 'rotate' : 'reopen'} log ${file}: ${(err as Error).message}\n`);
      return false;
    }
    // Lines already written to it still reach the old (renamed) file.
    const ended: Promise<void> = new Promise<void>((resolve) => old.stream.end(resolve)).then(() => void ending.delete(ended));
    ending.add(ended);
    return true;
  };

  const append = (line: string) => {
    const bytes = Buffer.byteLength(line);
    if (current.size > 0 && current.size + bytes > maxBytes) {
      // Count again from the disk first: logrotate's copytruncate may have emptied the file.
      current.size = safeSize(current.fd) + current.stream.writableLength;
      if (current.size + bytes > maxBytes && !replace(true)) current.size = 0; // retry only after another maxBytes
    }
    current.stream.write(line);
    current.size += bytes;
  };

  return {
    file,
    write(line) {
      if (current.stream.writableLength + Buffer.byteLength(line) > MAX_UNWRITTEN_BYTES) return void dropped++;
      if (dropped > 0) {
        append(JSON.stringify({ t: new Date().toISOString(), level: 'warn', msg: `dropped ${dropped} log lines: the disk did not keep up`, dropped }) + '\n');
        dropped = 0;
      }
      append(line);
    },
    reopen: () => void replace(false),
    close: async () => {
      await Promise.all([new Promise<void>((resolve) => current.stream.end(resolve)), ...ending]);
    },
  };
}

function renameIfPresent(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // already moved away (logrotate)
  }
}

function safeSize(fd: number): number {
  try {
    return fs.fstatSync(fd).size;
  } catch {
    return 0;
  }
}

const LEVEL_ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function createLogger(sink: LogSink, redactor: Redactor, base: Fields = {}, minLevel: Level = 'info'): Logger {
  return new JsonLogger(sink, redactor, base, minLevel);
}

/**
 * Methods on the prototype, not closures: every connection holds a few children (its address,
 * session, instance), so a child is one small object.
 */
class JsonLogger implements Logger {
  constructor(
    private readonly sink: LogSink,
    private readonly redactor: Redactor,
    private readonly base: Fields,
    private readonly minLevel: Level,
  ) {}

  debug(msg: string, fields?: Fields): void { this.emit('debug', msg, fields); }
  info(msg: string, fields?: Fields): void { this.emit('info', msg, fields); }
  warn(msg: string, fields?: Fields): void { this.emit('warn', msg, fields); }
  error(msg: string, fields?: Fields): void { this.emit('error', msg, fields); }

  child(fields: Fields): Logger {
    return new JsonLogger(this.sink, this.redactor, { ...this.base, ...fields }, this.minLevel);
  }

  private emit(level: Level, msg: string, fields?: Fields): void {
    if (LEVEL_ORDER[level] < LEVEL_ORDER[this.minLevel]) return;
    const record = { t: new Date().toISOString(), level, msg, ...this.base, ...fields };
    this.sink.write(this.redactor.redact(JSON.stringify(record, errorsAsText)) + '\n');
  }
}

function errorsAsText(_key: string, value: unknown): unknown {
  return value instanceof Error ? `${value.name}: ${value.message}` : value;
}

export interface LogBudgetOptions {
  /** Lines allowed at once before the rate applies. */
  burst: number;
  /** Lines allowed per second after the burst. */
  perSecond: number;
  /** At most one "suppressed" summary line per this many milliseconds. */
  summaryEveryMs: number;
  now?: () => number;
}

/**
 * A shared allowance of log lines (a token bucket), so that what strangers can make the daemon
 * write is bounded in bytes: a burst, then `perSecond`; the lines it drops are counted and
 * reported as one summary line at most every `summaryEveryMs`.
 */
export class LogBudget {
  private tokens: number;
  private refilledAt: number;
  private suppressed = 0;
  private summaryTimer: NodeJS.Timeout | null = null;
  private readonly now: () => number;

  /** `out` receives the summary lines; `source` completes "suppressed K log lines from …". */
  constructor(private readonly out: Logger, private readonly source: string, private readonly opts: LogBudgetOptions) {
    this.now = opts.now ?? Date.now;
    this.tokens = opts.burst;
    this.refilledAt = this.now();
  }

  /**
   * `log`, except that while `limited()` is true each line spends one token and is dropped when
   * none is left. Children share the budget and the condition.
   */
  limit(log: Logger, limited: () => boolean = ALWAYS): Logger {
    return new BudgetedLogger(this, log, limited);
  }

  /** @internal BudgetedLogger: may a line be written now? */
  allows(limited: () => boolean): boolean {
    return !limited() || this.take();
  }

  /** Writes the pending summary now (e.g. before the daemon exits). */
  flush(): void {
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
    this.summaryTimer = null;
    if (this.suppressed === 0) return;
    this.out.warn(`suppressed ${this.suppressed} log lines from ${this.source}`, { suppressed: this.suppressed });
    this.suppressed = 0;
  }

  private take(): boolean {
    const now = this.now();
    this.tokens = Math.min(this.opts.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.opts.perSecond);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.suppressed++;
    if (!this.summaryTimer) {
      this.summaryTimer = setTimeout(() => this.flush(), this.opts.summaryEveryMs);
      this.summaryTimer.unref();
    }
    return false;
  }
}

const ALWAYS = () => true;

/** LogBudget.limit's logger: one small object per child (connections hold a few each). */
class BudgetedLogger implements Logger {
  constructor(private readonly budget: LogBudget, private readonly log: Logger, private readonly limited: () => boolean) {}

  debug(msg: string, fields?: Fields): void { if (this.budget.allows(this.limited)) this.log.debug(msg, fields); }
  info(msg: string, fields?: Fields): void { if (this.budget.allows(this.limited)) this.log.info(msg, fields); }
  warn(msg: string, fields?: Fields): void { if (this.budget.allows(this.limited)) this.log.warn(msg, fields); }
  error(msg: string, fields?: Fields): void { if (this.budget.allows(this.limited)) this.log.error(msg, fields); }

  child(fields: Fields): Logger {
    return new BudgetedLogger(this.budget, this.log.child(fields), this.limited);
  }
}
