// A GET to a loopback server (the daemon's /health, mostly) whose answer is JSON.
import http from 'node:http';
import https from 'node:https';

export interface JsonAnswer<T> {
  status: number;
  text: string;
  body: T;
}

/**
 * GETs `path` from 127.0.0.1:`port` over http, or over https trusting `ca` when it is given. Each GET
 * has its own connection (no keep-alive socket is left on the server; every https GET does its own
 * handshake) and fails after 5 s.
 */
export function getJson<T = any>(port: number, path: string, opts: { ca?: Buffer } = {}): Promise<JsonAnswer<T>> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, path, timeout: 5000, agent: false } as const;
    const req = (opts.ca ? https.get({ ...options, ca: opts.ca }, onAnswer) : http.get(options, onAnswer));
    function onAnswer(res: http.IncomingMessage) {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode!, text, body: JSON.parse(text) });
        } catch {
          reject(new Error(`GET ${path} answered ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`));
        }
      });
    }
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}
