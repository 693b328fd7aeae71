// The official MCP conformance suite (@modelcontextprotocol/conformance, its `server` runner) against
// the real daemon's /mcp. The runner sends no Authorization header, so a test-only proxy in front of
// the daemon adds the local secret as bearer (test/helpers/bearerProxy.ts); Host and Origin pass
// through unchanged, so the DNS-rebinding scenario reaches the daemon's own check.
//
// Only the scenarios that apply to a server with our tools run here. The others need resources,
// prompts, completions, sampling, elicitation, SSE resumability, or fixture tools (test_image_content,
// …) that only the suite's reference server has; docs/protocol.md lists each one and why.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startBearerProxy, type BearerProxy } from '../helpers/bearerProxy';
import { startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon';
import { within } from '../helpers/wait';

const RUNNER = path.resolve(__dirname, '../../../node_modules/@modelcontextprotocol/conformance/dist/index.js');
const APPLICABLE_SCENARIOS = ['server-initialize', 'ping', 'tools-list', 'logging-set-level', 'dns-rebinding-protection', 'server-sse-multiple-streams'];

interface Check {
  id: string;
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | 'SKIPPED';
  errorMessage?: string;
}

/** Runs one scenario; resolves with the runner's exit code, output and checks. */
async function runScenario(url: string, scenario: string): Promise<{ code: number | null; output: string; checks: Check[] }> {
  const out = tempDir('conformance');
  const child = spawn(process.execPath, [RUNNER, 'server', '--url', url, '--scenario', scenario, '--output-dir', out], { cwd: out, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output = (output + d).slice(-20_000)));
  child.stderr.on('data', (d) => (output = (output + d).slice(-20_000)));
  const code = await within(new Promise<number | null>((resolve) => child.on('exit', resolve)), 60_000, `conformance ${scenario}`).catch((err) => {
    child.kill('SIGKILL');
    throw err;
  });
  const files = fs.readdirSync(out, { recursive: true }).map(String).filter((f) => f.endsWith('checks.json'));
  const checks = files.flatMap((f) => JSON.parse(fs.readFileSync(path.join(out, f), 'utf8')) as Check[]);
  fs.rmSync(out, { recursive: true, force: true });
  return { code, output, checks };
}

describe('MCP conformance (@modelcontextprotocol/conformance server scenarios) against /mcp', function () {
  this.timeout(90_000);
  let daemon: RunningDaemon;
  let proxy: BearerProxy;

  before(async function () {
    daemon = await startDaemon({
      env: { MCP_ENABLE_MULTI_USER: undefined, SUPABASE_URL: undefined, DATABASE_URL: undefined, SUPABASE_ANON_KEY: undefined, MCP_MAX_CONNECTIONS_PER_USER: '100' },
    });
    const secret = JSON.parse(fs.readFileSync(path.join(daemon.stateDir, 'daemon.json'), 'utf8')).secret as string;
    proxy = await startBearerProxy(daemon.port, secret);
  });

  after(async function () {
    this.timeout(20_000);
    await proxy?.close();
    if (daemon) assert.equal(await within(daemon.stop(), 15_000, 'daemon stop'), 0);
  });

  for (const scenario of APPLICABLE_SCENARIOS) {
    it(`passes ${scenario}`, async function () {
      const { code, output, checks } = await runScenario(`http://localhost:${proxy.port}/mcp`, scenario);
      assert.ok(checks.length > 0, `the runner wrote its checks:\n${output}`);
      const bad = checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
      assert.deepEqual(bad, [], `${scenario}:\n${output}`);
      assert.equal(code, 0, output);
    });
  }
});
