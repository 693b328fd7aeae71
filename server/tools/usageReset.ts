// When the daily budget starts again, in words. Its own module (no zod, no stores) because the
// extension's status bar says it too and imports it (issue 14: a small activation bundle).

/** When a UTC day's budget starts again: "00:00 UTC, in 3 h 12 min" (the extension's status bar says it too). */
export function describeReset(resetsAt: string, now = Date.now()): string {
  const minutes = Math.max(1, Math.ceil((Date.parse(resetsAt) - now) / 60_000));
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return `00:00 UTC, in ${h > 0 ? `${h} h ${m} min` : `${m} min`}`;
}
