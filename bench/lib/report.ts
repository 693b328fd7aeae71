// The bench's output: one markdown table (printed, and written with the machine and date into
// bench/RESULTS.md) plus a JSON copy in bench/results/ (gitignored).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Ratio } from './rounds';

/** One line of the table: the daemon's figure, against one baseline when the case has one. */
export interface Row {
  case: string;
  daemon: string;
  baseline?: string;
  baselineValue?: string;
  /** daemon ÷ baseline: the median of per-round ratios and their range. */
  ratio?: string;
  target?: string;
  /** Whether the figure meets the target (undefined: no target). */
  met?: boolean;
  /** How many measured rounds (or windows, or single runs) the figure comes from. */
  rounds?: string;
}

export interface Machine {
  date: string;
  cores: number;
  cpu: string;
  node: string;
  os: string;
  memory: string;
  loadAtStart: string;
  loadAtEnd?: string;
  commit: string;
}

export function describeMachine(): Machine {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    if (execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim()) commit += ' (with uncommitted changes)';
  } catch {}
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model?.trim() ?? 'unknown',
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    loadAtStart: loadAverage(),
    commit,
  };
}

export function loadAverage(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(' / ');
}

// ------------------------------------------------------------------ formatting

const sig = (x: number, digits = 3) => (Number.isFinite(x) ? Number(x.toPrecision(digits)).toLocaleString('en-US', { maximumFractionDigits: 6 }) : 'n/a');

export const fmtMs = (ms: number) => `${sig(ms)} ms`;
export const fmtPerSec = (n: number, unit = 'calls/s') => `${Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'} ${unit}`;
export const fmtBytes = (bytes: number) => (bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`);

/** A latency-style ratio: "1.92× (1.80–2.10)". */
export function fmtTimes(r: Ratio): string {
  if (!Number.isFinite(r.median)) return 'n/a';
  const x = (v: number) => v.toFixed(2);
  return r.min === r.max ? `${x(r.median)}×` : `${x(r.median)}× (${x(r.min)}–${x(r.max)})`;
}

/** A throughput ratio as a share of the baseline: "45 % (41–48 %)". */
export function fmtShare(r: Ratio): string {
  if (!Number.isFinite(r.median)) return 'n/a';
  const pct = (x: number) => Math.round(x * 100);
  return r.min === r.max ? `${pct(r.median)} %` : `${pct(r.median)} % (${pct(r.min)}–${pct(r.max)} %)`;
}

// ------------------------------------------------------------------ the table

const COLUMNS: [keyof Row, string][] = [
  ['case', 'case'],
  ['daemon', 'daemon'],
  ['baseline', 'baseline (same run)'],
  ['baselineValue', 'baseline figure'],
  ['ratio', 'daemon ÷ baseline (median of rounds, min–max)'],
  ['target', 'target'],
  ['rounds', 'rounds'],
];

function cell(row: Row, key: keyof Row): string {
  if (key === 'target') {
    if (!row.target) return '';
    return row.met === undefined ? row.target : `${row.target} ${row.met ? '✓ met' : '✗ missed'}`;
  }
  const v = row[key];
  return v === undefined ? '' : String(v).replace(/\|/g, '\\|');
}

export function markdownTable(rows: readonly Row[]): string {
  const lines = [
    `| ${COLUMNS.map(([, h]) => h).join(' | ')} |`,
    `|${COLUMNS.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${COLUMNS.map(([k]) => cell(r, k)).join(' | ')} |`),
  ];
  return lines.join('\n');
}

export interface Report {
  machine: Machine;
  rows: Row[];
  notes: string[];
  method: string[];
  durationSec: number;
}

export function resultsMarkdown(report: Report): string {
  const m = report.machine;
  return [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (bench/main.ts); do not edit by hand. Every ratio compares the daemon',
    'with a bare baseline measured in the same run, on the same machine, in alternating rounds, so',
    'ratios carry over between machines far better than absolute figures do.',
    '',
    `- date: ${m.date}`,
    `- machine: ${m.cores} cores, ${m.cpu}, ${m.memory} RAM, ${m.os}`,
    `- Node.js ${m.node}; commit ${m.commit}`,
    `- load average (1/5/15 min) at start: ${m.loadAtStart}; at end: ${m.loadAtEnd ?? 'n/a'}`,
    `- the bench took ${Math.round(report.durationSec)} s`,
    '',
    markdownTable(report.rows),
    '',
    ...(report.notes.length ? ['Notes:', '', ...report.notes.map((n) => `- ${n}`), ''] : []),
    'Method:',
    '',
    ...report.method.map((n) => `- ${n}`),
    '',
    'Reproduce: `npm run bench` (Node 22, PostgreSQL 15 and code-server are set up as for `npm test`;',
    '`BENCH_ONLY=calls,handshake` runs some case groups only, see bench/main.ts).',
    '',
  ].join('\n');
}

export function writeResults(root: string, report: Report, writeMarkdown: boolean): string[] {
  const written: string[] = [];
  const jsonDir = path.join(root, 'bench', 'results');
  fs.mkdirSync(jsonDir, { recursive: true });
  const json = path.join(jsonDir, 'results.json');
  fs.writeFileSync(json, JSON.stringify(report, null, 2));
  written.push(json);
  if (writeMarkdown) {
    const md = path.join(root, 'bench', 'RESULTS.md');
    fs.writeFileSync(md, resultsMarkdown(report));
    written.push(md);
  }
  return written;
}
