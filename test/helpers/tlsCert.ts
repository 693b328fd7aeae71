// A self-signed certificate for tests that serve TLS (made with the openssl command at test time).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface TestCert {
  cert: string;
  key: string;
  pem: Buffer;
}

/** A self-signed P-256 certificate for 127.0.0.1 and localhost, valid one day, written into `dir`. */
export function makeCert(dir: string, name: string): TestCert {
  const cert = path.join(dir, `${name}.crt.pem`);
  const key = path.join(dir, `${name}.key.pem`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-days', '1',
    '-keyout', key, '-out', cert,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { cert, key, pem: fs.readFileSync(cert) };
}
