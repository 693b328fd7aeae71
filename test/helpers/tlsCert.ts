// A self-signed certificate made with the openssl command at test time (loopback names only).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface TestCert {
  cert: string;
  key: string;
  pem: Buffer;
}

/** Throws one sentence saying what to install when openssl is missing. */
export function requireOpenssl(): void {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error('These tests make a self-signed certificate with the openssl command, which was not found; install the Debian package "openssl".');
  }
}

/** A self-signed P-256 certificate for 127.0.0.1 and localhost, valid one day: `<dir>/<name>.crt.pem` and `.key.pem`. */
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
