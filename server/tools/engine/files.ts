// The `files` argument of every model tool: the caller sends each file's text (path for display,
// content), within a byte cap per file and per call. A hosted (supabase-mode) daemon never reads its
// own disk on a caller's behalf: there the caller's machine is not the daemon's. A local-mode daemon
// runs as the caller's own OS user, so it may also read an absolute path the caller names, within the
// same caps, under these rules:
//   - absolute paths only (a relative one would resolve against the daemon's working directory, which
//     the caller cannot see), resolved with realpath so the checks apply to the file really read;
//   - regular files only: a directory, device, FIFO or socket is refused (a FIFO or a device can block
//     forever or never end, so the file is opened non-blocking and checked before any read);
//   - nothing under /proc, /sys or /dev, whatever the link: they report sizes that lie, can have side
//     effects, and /proc/self/environ holds this daemon's own provider keys, which must not be sent to
//     a model;
//   - text only: a file with a NUL byte in its first 8 KiB is refused as binary.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { FileLimits } from '../../config';
import { ToolError } from '../registry';

export const FileErrorCode = {
  tooLarge: 'files_too_large',
  contentRequired: 'file_content_required',
  unreadable: 'file_not_readable',
} as const;

/** At most this many entries in `files` (their bytes are capped separately). */
export const MAX_FILES = 100;
const MAX_PATH_CHARS = 4096;
const BINARY_SNIFF_BYTES = 8192;
/** Real paths a local-mode daemon never reads (see the header). */
const REFUSED_ROOTS = /^\/(proc|sys|dev)(\/|$)/;

export const FilesArgument = z
  .array(
    z.object({
      path: z.string().min(1).max(MAX_PATH_CHARS).describe('The file\'s path, shown to the model (e.g. src/app.ts). A local-mode daemon reads it from disk when content is omitted: then it must be absolute.'),
      content: z.string().optional().describe('The file\'s text. Required by a hosted (supabase-mode) daemon, which never reads its own disk for a caller.'),
    }).strict(),
  )
  .max(MAX_FILES)
  .optional()
  .describe('Files for the model to read with the prompt: each {path, content}. Caps: 256 KiB per file and 1 MiB per call by default (EXAI_FILES_MAX_FILE_BYTES, EXAI_FILES_MAX_CALL_BYTES); past them the call is refused with files_too_large. Sent with this turn only: a continuation remembers their names, not their text.');

export type FileArgument = NonNullable<z.infer<typeof FilesArgument>>[number];

export interface AttachedFile {
  /** As the caller named it, control characters replaced (it goes into the prompt). */
  path: string;
  content: string;
  bytes: number;
}

/** The text of each file: as sent, or (local mode only) read from disk. Every cap is checked here. */
export async function gatherFiles(files: FileArgument[] | undefined, limits: FileLimits, mode: 'local' | 'supabase'): Promise<AttachedFile[]> {
  const gathered: AttachedFile[] = [];
  let total = 0;
  for (const file of files ?? []) {
    const shown = displayPath(file.path);
    const remaining = limits.maxCallBytes - total;
    let content: string;
    let bytes: number;
    if (file.content !== undefined) {
      content = file.content;
      bytes = Buffer.byteLength(content, 'utf8');
      checkSize(shown, bytes, limits, total);
    } else if (mode === 'local') {
      content = await readLocalFile(file.path, shown, Math.min(limits.maxFileBytes, remaining), limits, total);
      bytes = Buffer.byteLength(content, 'utf8');
    } else {
      throw new ToolError(FileErrorCode.contentRequired,
        `The file "${shown}" has no content: this daemon is hosted (supabase mode) and never reads its own disk for a caller. Send each file's text as content.`);
    }
    total += bytes;
    gathered.push({ path: shown, content, bytes });
  }
  return gathered;
}

/** The files as the model sees them, before the prompt. */
export function renderFiles(files: AttachedFile[]): string {
  return files.map((f) => `<file path="${f.path.replace(/"/g, '&quot;')}">\n${f.content}\n</file>`).join('\n\n');
}

/** What the thread remembers of a turn's files: their names and sizes, not their text. */
export function describeFiles(files: AttachedFile[]): string {
  return `[files sent with this message: ${files.map((f) => `${f.path} (${f.bytes} bytes)`).join(', ')}]`;
}

function checkSize(shown: string, bytes: number, limits: FileLimits, usedBefore: number): void {
  if (bytes > limits.maxFileBytes) {
    throw new ToolError(FileErrorCode.tooLarge,
      `The file "${shown}" is ${fmt(bytes)} bytes; each file may be at most ${fmt(limits.maxFileBytes)} bytes (EXAI_FILES_MAX_FILE_BYTES). Send the part that matters, or split the question.`);
  }
  if (usedBefore + bytes > limits.maxCallBytes) {
    throw new ToolError(FileErrorCode.tooLarge,
      `The files of this call add up to more than ${fmt(limits.maxCallBytes)} bytes (EXAI_FILES_MAX_CALL_BYTES), reached at "${shown}"; send fewer or smaller files, or split the question over several calls (a continuation_id keeps the conversation).`);
  }
}

async function readLocalFile(requested: string, shown: string, maxBytes: number, limits: FileLimits, usedBefore: number): Promise<string> {
  const refuse = (why: string) => new ToolError(FileErrorCode.unreadable, `The file "${shown}" was not read: ${why}`);
  if (!path.isAbsolute(requested)) throw refuse('a path without content must be absolute (this daemon cannot know your working directory); send an absolute path, or the file\'s text as content.');
  let real: string;
  try {
    real = await fs.promises.realpath(requested);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw refuse(code === 'ENOENT' || code === 'ENOTDIR' ? 'it does not exist.' : code === 'EACCES' ? 'permission denied.' : `it cannot be resolved (${code ?? 'error'}).`);
  }
  if (REFUSED_ROOTS.test(real)) throw refuse(`it is under ${real.split('/').slice(0, 2).join('/')}, which the daemon never reads (system files, and its own environment with provider keys); send the text as content if you mean it.`);
  let handle: fs.promises.FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: the resolved path is not swapped for a link.
    handle = await fs.promises.open(real, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw refuse(code === 'EACCES' ? 'permission denied.' : code === 'EISDIR' ? 'it is a directory; name the files in it instead.' : `it cannot be opened (${code ?? 'error'}).`);
  }
  try {
    // A parent directory swapped for a link between realpath and open escapes O_NOFOLLOW; where the
    // system can say what was really opened (Linux), check that path once more.
    const opened = await fs.promises.readlink(`/proc/self/fd/${handle.fd}`).catch(() => null);
    if (opened !== null && REFUSED_ROOTS.test(opened)) throw refuse('it resolves under a system directory the daemon never reads.');
    const stat = await handle.stat();
    if (stat.isDirectory()) throw refuse('it is a directory; name the files in it instead.');
    if (!stat.isFile()) throw refuse('it is not a regular file (a device, FIFO or socket).');
    checkSize(shown, stat.size, limits, usedBefore);
    // Read at most one byte past the cap: a file that grows while being read is still bounded.
    const buffer = Buffer.alloc(Math.min(stat.size, maxBytes) + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    checkSize(shown, length, limits, usedBefore);
    const data = buffer.subarray(0, length);
    if (data.subarray(0, BINARY_SNIFF_BYTES).includes(0)) throw refuse('it looks like a binary file (it holds NUL bytes); only text files can be sent to a model.');
    return data.toString('utf8');
  } finally {
    await handle.close();
  }
}

function displayPath(p: string): string {
  // eslint-disable-next-line no-control-regex
  return p.replace(/[\u0000-\u001f\u007f]/g, '?');
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}
