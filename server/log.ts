// The daemon's log: one file per daemon process (two daemons never share a file), one JSON object
// per line, each tagged with the connection's client instance and session id. Every line passes
// through redact(): registered secrets, JWTs and bearer credentials never reach the disk.
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

/**
 * Opens `<dir>/exai-daemon-<pid>.log` (mode 0600). Append mode (O_APPEND): after an outside
 * truncation (logrotate's copytruncate) the next line lands at the new end, not at the old offset.
 */
export function openLogFile(dir: string, pid = process.pid): FileLogSink {
  const file = path.join(dir, `exai-daemon-${pid}.log`);
  const open = () => {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const s = fs.createWriteStream(file, { flags: 'a', mode: 0o600 });
    s.on('error', (err) => process.stderr.write(`exai-daemon: cannot write log ${file}: ${err.message}\n`));
    return s;
  };
  let stream = open();
  return {
    file,
    write: (line) => void stream.write(line),
    reopen() {
      const old = stream;
      try {
        stream = open();
      } catch (err) {
        // The directory cannot be created: keep writing to the file already open.
        process.stderr.write(`exai-daemon: cannot reopen log ${file}: ${(err as Error).message}\n`);
        return;
      }
      old.end(); // lines already written to it still reach the old (renamed) file
    },
    close: () => new Promise<void>((resolve) => stream.end(resolve)),
  };
}

export function createLogger(sink: LogSink, redactor: Redactor, base: Fields = {}, minLevel: Level = 'info'): Logger {
  const order: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (order[level] < order[minLevel]) return;
    const record = { t: new Date().toISOString(), level, msg, ...base, ...fields };
    sink.write(redactor.redact(JSON.stringify(record, errorsAsText)) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(sink, redactor, { ...base, ...fields }, minLevel),
  };
}

function errorsAsText(_key: string, value: unknown): unknown {
  return value instanceof Error ? `${value.name}: ${value.message}` : value;
}
