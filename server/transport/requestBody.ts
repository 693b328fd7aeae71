// A request body read into memory with a bound in bytes, for every HTTP route that takes one (/mcp,
// the consent pages). Each route words its own refusals; the reading, the bound and the cut-off are
// defined here once.
import type http from 'node:http';

export interface BodyRefusals {
  /** The body is (or announces itself as) larger than the bound. */
  tooLarge: () => Error;
  /** The connection closed before the body's end. */
  cutOff: () => Error;
}

/** The body as UTF-8 text, at most `max` bytes; stops reading and rejects past the bound. */
export function readBoundedBody(req: http.IncomingMessage, max: number, refusals: BodyRefusals): Promise<string> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length']) > max) return reject(refusals.tooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.pause();
        return reject(refusals.tooLarge());
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
    req.on('close', () => reject(refusals.cutOff()));
  });
}
