// The daemon's own TLS (--tls-cert / --tls-key): reads and checks the PEM files once at start-up
// (a bad file is a ConfigError: exit 2, one sentence naming the setting) and again on SIGHUP, when
// a renewed certificate replaces the old one without a restart.
import crypto from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import { ConfigError, type TlsSettings } from '../config';

export interface LoadedTls {
  cert: Buffer;
  key: Buffer;
  /** The leaf certificate's subject and validity, for the log. */
  subject: string;
  validTo: Date;
  expired: boolean;
}

export function loadTls(settings: TlsSettings, now = new Date()): LoadedTls {
  const { certFile, keyFile, certSetting, keySetting } = settings;
  const cert = readFile(certSetting, certFile, 'PEM certificate');
  const key = readFile(keySetting, keyFile, 'PEM private key');

  if (!cert.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(`${certSetting} ${certFile} is not a PEM certificate (it has no "-----BEGIN CERTIFICATE-----" block).`);
  }
  let x509: crypto.X509Certificate;
  try {
    x509 = new crypto.X509Certificate(cert); // the first block: the daemon's own (leaf) certificate
  } catch {
    throw new ConfigError(`${certSetting} ${certFile} is not a readable PEM certificate (its first "-----BEGIN CERTIFICATE-----" block does not parse).`);
  }

  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString('latin1'))) {
    throw new ConfigError(`${keySetting} ${keyFile} is not a PEM private key (it has no "-----BEGIN PRIVATE KEY-----" block).`);
  }
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey(key);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE') {
      throw new ConfigError(`${keySetting} ${keyFile} is encrypted with a passphrase; the daemon needs the key unencrypted (readable only by the daemon's user).`);
    }
    throw new ConfigError(`${keySetting} ${keyFile} is not a readable PEM private key.`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new ConfigError(`${keySetting} ${keyFile} is not the private key of the certificate in ${certSetting} ${certFile}.`);
  }
  try {
    tls.createSecureContext({ cert, key }); // what the server will do with them; catches what the checks above missed
  } catch (err) {
    throw new ConfigError(`${certSetting} ${certFile} and ${keySetting} ${keyFile} cannot be used together for TLS (${(err as Error).message}).`);
  }

  const validTo = new Date(x509.validTo);
  return { cert, key, subject: x509.subject.replace(/\n/g, ', '), validTo, expired: validTo.getTime() <= now.getTime() };
}

function readFile(setting: string, file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(`${setting} ${file} cannot be read (${code}); it must be the path of a ${what} file the daemon's user can read.`);
  }
}
