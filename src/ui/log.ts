// One LogOutputChannel per window. Everything passes through the daemon's Redactor first, so a
// token, a refresh token or the local secret never reaches the Output panel or a bug report.
import * as vscode from 'vscode';
import { Redactor } from '../../server/log';

export interface WindowLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Adds a value (e.g. the local daemon secret) that must never be shown. */
  addSecret(value: string | null | undefined): void;
  show(): void;
  dispose(): void;
}

export function createWindowLog(name = 'EXAI'): WindowLog {
  const channel = vscode.window.createOutputChannel(name, { log: true });
  const redactor = new Redactor();
  const clean = (m: string) => redactor.redact(m);
  return {
    info: (m) => channel.info(clean(m)),
    warn: (m) => channel.warn(clean(m)),
    error: (m) => channel.error(clean(m)),
    addSecret: (v) => redactor.addSecret(v),
    show: () => channel.show(true),
    dispose: () => channel.dispose(),
  };
}
