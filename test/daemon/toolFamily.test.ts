// The model tool family end to end: the real daemon (dist/server.js, local mode) against three fake
// OpenAI-compatible servers on loopback standing in for the custom endpoint, GLM (Z.ai) and Kimi
// (Moonshot). Pins: every specialised tool (thinkdeep, codereview, debug, planner, challenge) sends
// its own system prompt and the caller's files; one conversation moves between tools; the files'
// byte caps and the local-mode disk rules; the provider features (GLM thinking and web search, Kimi
// $web_search) as the exact request bodies, and their refusal elsewhere; consensus with a failing
// model; listmodels. Every wait is bounded.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ToolDescription } from '../../server/protocol';
import challengePrompt from '../../server/tools/prompts/challenge.md';
import codereviewPrompt from '../../server/tools/prompts/codereview.md';
import synthesisPrompt from '../../server/tools/prompts/consensus-synthesis.md';
import consensusPrompt from '../../server/tools/prompts/consensus.md';
import debugPrompt from '../../server/tools/prompts/debug.md';
import plannerPrompt from '../../server/tools/prompts/planner.md';
import thinkdeepPrompt from '../../server/tools/prompts/thinkdeep.md';
import { helloClient, type TestClient } from '../helpers/client';
import { startDaemon, tempDir, type RunningDaemon } from '../helpers/daemon';
import { CLEAN_PROVIDER_ENV, callTool, continuationOf, errorOf, localSecretOf, okText, progressOf } from '../helpers/toolCalls';
import { FAKE_SEARCH_ARGUMENTS, startFakeOpenAI, type FakeOpenAI } from '../providers/fakeOpenAI';

const CUSTOM_KEY = 'sk-custom-test-0123456789abcdefghij';
const GLM_KEY = 'glm-test-key-abcdefghijklmnopqrstuvwxyz';
const KIMI_KEY = 'sk-kimi-test-zyxwvutsrqponmlkjihgfedcba';

const SPECIALISED: [string, string][] = [
  ['thinkdeep', thinkdeepPrompt],
  ['codereview', codereviewPrompt],
  ['debug', debugPrompt],
  ['planner', plannerPrompt],
  ['challenge', challengePrompt],
];
const MODEL_TOOLS = ['chat', ...SPECIALISED.map(([name]) => name), 'consensus'];

describe('model tool family (real daemon, local mode, fake custom / GLM / Kimi providers)', function () {
  this.timeout(30000);
  let custom: FakeOpenAI;
  let glm: FakeOpenAI;
  let kimi: FakeOpenAI;
  let daemon: RunningDaemon;
  const daemons: RunningDaemon[] = [];
  const clients: TestClient[] = [];
  const seen: string[] = [];
  let dir: string;

  const start = async (env: Record<string, string>) => {
    const d = await startDaemon({ env: { ...CLEAN_PROVIDER_ENV, ...env } });
    daemons.push(d);
    return d;
  };
  const open = async (d = daemon) => {
    const { client, ack } = await helloClient(d.url, localSecretOf(d), `vscode-family-${clients.length}`);
    assert.ok(ack.op === 'hello_ack' && ack.ok, JSON.stringify(ack));
    clients.push(client);
    return client;
  };
  const fakes = () => [custom, glm, kimi];
  /** A second daemon with only GLM configured (started once, when first needed). */
  let glmOnlyDaemon: Promise<RunningDaemon> | null = null;
  const glmOnly = () => (glmOnlyDaemon ??= start({ GLM_API_KEY: GLM_KEY, GLM_API_URL: glm.baseUrl }));
  const upstreamCount = () => fakes().reduce((n, f) => n + f.requests().length, 0);

  before(async function () {
    [custom, glm, kimi] = await Promise.all([
      startFakeOpenAI({ apiKey: CUSTOM_KEY }), startFakeOpenAI({ apiKey: GLM_KEY }), startFakeOpenAI({ apiKey: KIMI_KEY }),
    ]);
    daemon = await start({
      EXAI_PROVIDER_BASE_URL: custom.baseUrl, EXAI_PROVIDER_API_KEY: CUSTOM_KEY, EXAI_DEFAULT_MODEL: 'fake-model',
      GLM_API_KEY: GLM_KEY, GLM_API_URL: glm.baseUrl, KIMI_API_KEY: KIMI_KEY, KIMI_API_URL: kimi.baseUrl,
      EXAI_PROVIDER_TIMEOUT_SECONDS: '10',
    });
    dir = fs.realpathSync(tempDir('files'));
  });

  beforeEach(function () {
    for (const f of fakes()) {
      f.set({});
      f.clearRequests();
    }
  });

  afterEach(async function () {
    for (const c of clients.splice(0)) {
      await c.close();
      seen.push(JSON.stringify(c.frames));
    }
  });

  after(async function () {
    const frames = seen.join('');
    for (const key of [CUSTOM_KEY, GLM_KEY, KIMI_KEY]) {
      assert.ok(!frames.includes(key), 'an API key reached a frame');
      for (const d of daemons) assert.ok(!d.logs().includes(key) && !d.stderr().includes(key), 'an API key reached the log');
    }
    for (const d of daemons) await d.stop();
    await Promise.all(fakes().map((f) => f?.close()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lists every model tool with a description an agent can choose by, and the shared arguments', async function () {
    const client = await open();
    client.send({ op: 'list_tools', request_id: 'lt' });
    const res = await client.next<{ op: 'list_tools_res'; tools: ToolDescription[] }>((f) => f.op === 'list_tools_res');
    const byName = new Map(res.tools.map((t) => [t.name, t]));
    for (const name of [...MODEL_TOOLS, 'listmodels', 'threads']) assert.ok(byName.has(name), `${name} is listed`);
    for (const name of MODEL_TOOLS) {
      const tool = byName.get(name)!;
      const schema = tool.inputSchema as any;
      assert.ok(tool.description.length >= 150, `${name} has a description that says when to use it: ${tool.description}`);
      assert.match(tool.description, /continuation_id/);
      assert.equal(schema.additionalProperties, false);
      assert.deepEqual(schema.required.includes('prompt'), true);
      assert.equal(schema.properties.continuation_id.format, 'uuid', name);
      assert.equal(schema.properties.files.type, 'array', name);
      assert.deepEqual(schema.properties.files.items.required, ['path'], name);
    }
    for (const [name] of SPECIALISED) {
      const props = (byName.get(name)!.inputSchema as any).properties;
      assert.equal(props.system, undefined, `${name} has its own system prompt`);
      assert.equal(props.thinking.type, 'boolean');
      assert.equal(props.web_search.type, 'boolean');
    }
    const consensus = byName.get('consensus')!.inputSchema as any;
    assert.equal(consensus.properties.models.minItems, 2);
    assert.equal(consensus.properties.models.maxItems, 5);
    // Five different prompts, none empty.
    assert.equal(new Set(SPECIALISED.map(([, p]) => p)).size, 5);
    for (const [, p] of SPECIALISED) assert.ok(p.length > 200);
  });

  for (const [name, systemPrompt] of SPECIALISED) {
    it(`${name} sends its own system prompt and the files, then the prompt`, async function () {
      const client = await open();
      const files = [
        { path: 'src/app.ts', content: 'export const answer = 42;\n' },
        { path: 'README.md', content: '# héllo' },
      ];
      const text = okText(await callTool(client, name, { prompt: `please ${name} this`, files }));
      continuationOf(text);
      const [req] = custom.requests();
      assert.equal(custom.requests().length, 1);
      assert.equal(req.model, 'fake-model');
      assert.deepEqual(req.body.messages, [
        { role: 'system', content: systemPrompt },
        { role: 'user', content: `<file path="src/app.ts">\nexport const answer = 42;\n\n</file>\n\n<file path="README.md">\n# héllo\n</file>\n\nplease ${name} this` },
      ]);
      assert.equal(req.body.stream, true);
      assert.equal('thinking' in req.body, false, 'no provider feature unless asked');
      assert.equal('tools' in req.body, false);
    });
  }

  it('one conversation moves between tools: thinkdeep, then codereview, then chat, each seeing the turns before', async function () {
    const client = await open();
    const first = okText(await callTool(client, 'thinkdeep', { prompt: 'is this design sound?', files: [{ path: 'a.ts', content: 'let a;' }] }));
    const id = continuationOf(first);
    const second = okText(await callTool(client, 'codereview', { prompt: 'now review it', continuation_id: id }));
    assert.equal(continuationOf(second), id, 'the same thread');
    const third = okText(await callTool(client, 'chat', { prompt: 'summarise', continuation_id: id }));
    assert.equal(continuationOf(third), id);

    const [, review, chat] = custom.requests();
    // The thread remembers the files' names, not their text; each tool sends its own system prompt.
    const firstTurn = [
      { role: 'user', content: 'is this design sound?\n\n[files sent with this message: a.ts (6 bytes)]' },
      { role: 'assistant', content: 'echo: <file path="a.ts">\nlet a;\n</file>\n\nis this design sound?' },
    ];
    assert.deepEqual(review.body.messages, [{ role: 'system', content: codereviewPrompt }, ...firstTurn, { role: 'user', content: 'now review it' }]);
    assert.deepEqual(chat.body.messages, [
      ...firstTurn,
      { role: 'user', content: 'now review it' }, { role: 'assistant', content: 'echo: now review it' },
      { role: 'user', content: 'summarise' },
    ]);
    const threads = JSON.parse(okText(await callTool(client, 'threads', {})));
    assert.equal(threads.find((t: any) => t.continuation_id === id)?.messages, 6);
  });

  it('refuses files past the per-file and per-call byte caps, with sentences that name the settings, before any upstream call', async function () {
    const client = await open();
    // 131,073 two-byte characters: within the character count, over 256 KiB in bytes.
    let err = errorOf(await callTool(client, 'chat', { prompt: 'read', files: [{ path: 'big.txt', content: 'é'.repeat(128 * 1024 + 1) }] }));
    assert.equal(err.code, 'files_too_large');
    assert.match(err.message, /The file "big\.txt" is 262,146 bytes; each file may be at most 262,144 bytes \(EXAI_FILES_MAX_FILE_BYTES\)/);
    const quarter = 'x'.repeat(250 * 1024);
    const five = Array.from({ length: 5 }, (_, i) => ({ path: `part${i}.txt`, content: quarter }));
    err = errorOf(await callTool(client, 'codereview', { prompt: 'read', files: five }));
    assert.equal(err.code, 'files_too_large');
    assert.match(err.message, /add up to more than 1,048,576 bytes \(EXAI_FILES_MAX_CALL_BYTES\), reached at "part4\.txt"/);
    // Exactly at the caps is fine.
    okText(await callTool(client, 'chat', { prompt: 'read', files: [{ path: 'max.txt', content: 'y'.repeat(256 * 1024) }] }));
    assert.equal(upstreamCount(), 1, 'only the call within the caps reached a provider');
  });

  it('local mode reads an absolute path the caller names, within the caps; refuses relative paths, directories, FIFOs, binaries, /proc and links into it', async function () {
    const client = await open();
    const file = path.join(dir, 'notes.txt');
    fs.writeFileSync(file, 'from disk\n');
    okText(await callTool(client, 'debug', { prompt: 'why?', files: [{ path: file }] }));
    assert.equal(custom.requests()[0].body.messages.at(-1).content, `<file path="${file}">\nfrom disk\n\n</file>\n\nwhy?`);

    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const binary = path.join(dir, 'blob.bin');
    fs.writeFileSync(binary, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 1]));
    const big = path.join(dir, 'big.log');
    fs.writeFileSync(big, Buffer.alloc(256 * 1024 + 1, 0x61));
    const link = path.join(dir, 'env-link');
    fs.symlinkSync('/proc/self/environ', link);
    const cases: [string, string, RegExp][] = [
      ['notes.txt', 'file_not_readable', /must be absolute/],
      [path.join(dir, 'missing.txt'), 'file_not_readable', /does not exist/],
      [dir, 'file_not_readable', /is a directory/],
      [fifo, 'file_not_readable', /not a regular file/],
      [binary, 'file_not_readable', /binary/],
      ['/proc/self/environ', 'file_not_readable', /under \/proc, which the daemon never reads/],
      [link, 'file_not_readable', /under \/proc/],
      [big, 'files_too_large', /262,145 bytes; each file may be at most 262,144 bytes/],
    ];
    for (const [p, code, message] of cases) {
      const err = errorOf(await callTool(client, 'chat', { prompt: 'read it', files: [{ path: p }] }, 5000));
      assert.equal(err.code, code, `${p}: ${err.message}`);
      assert.match(err.message, message, p);
    }
    assert.equal(upstreamCount(), 1, 'no refused file reached a provider');
  });

  it('GLM thinking and web search are explicit arguments, sent as Z.ai documents them', async function () {
    const client = await open();
    okText(await callTool(client, 'thinkdeep', { prompt: 'hard one', model: 'glm-4.6', thinking: true, web_search: true }));
    okText(await callTool(client, 'chat', { prompt: 'plain', model: 'glm-4.6', thinking: false }));
    okText(await callTool(client, 'chat', { prompt: 'default', model: 'glm-4.6' }));
    const [withBoth, off, plain] = glm.requests();
    assert.equal(withBoth.authorization, `Bearer ${GLM_KEY}`);
    assert.deepEqual(withBoth.body.thinking, { type: 'enabled' });
    assert.deepEqual(withBoth.body.tools, [{ type: 'web_search', web_search: { enable: true, search_engine: 'search_pro_jina', search_result: true } }]);
    assert.deepEqual(off.body.thinking, { type: 'disabled' });
    assert.equal('tools' in off.body, false);
    assert.equal('thinking' in plain.body, false, 'omitted: the model decides');
    assert.equal('tools' in plain.body, false);
  });

  it('Kimi web search declares $web_search, echoes the tool call back unchanged, and answers from the second round', async function () {
    const client = await open();
    kimi.set({ kimiWebSearch: true });
    const text = okText(await callTool(client, 'chat', { prompt: 'news today?', model: 'kimi-k2-0905-preview', web_search: true }));
    assert.match(text, /^echo: news today\?\n\ncontinuation_id: /, 'the answer is the final round only');
    const [first, second] = kimi.requests();
    assert.equal(kimi.requests().length, 2);
    assert.deepEqual(first.body.tools, [{ type: 'builtin_function', function: { name: '$web_search' } }]);
    assert.deepEqual(second.body.tools, first.body.tools);
    assert.deepEqual(second.body.messages.slice(1), [
      { role: 'assistant', content: '', tool_calls: [{ id: 'call-search-1', type: 'builtin_function', function: { name: '$web_search', arguments: FAKE_SEARCH_ARGUMENTS } }] },
      { role: 'tool', tool_call_id: 'call-search-1', name: '$web_search', content: FAKE_SEARCH_ARGUMENTS },
    ]);
  });

  it('refuses a feature the model\'s provider lacks, clearly and before any request', async function () {
    const client = await open();
    let err = errorOf(await callTool(client, 'chat', { prompt: 'x', model: 'kimi-k2-0905-preview', thinking: true }));
    assert.equal(err.code, 'feature_unsupported');
    assert.match(err.message, /^thinking is a feature of GLM \(Z\.ai\) \(glm-\* models\); the model "kimi-k2-0905-preview" is served by the Kimi \(Moonshot\) provider at .*, which has no such feature\. Omit thinking/);
    err = errorOf(await callTool(client, 'debug', { prompt: 'x', web_search: true }));
    assert.equal(err.code, 'feature_unsupported');
    assert.match(err.message, /^web_search is a feature of Kimi \(Moonshot\) .* and GLM \(Z\.ai\) .*; the model "fake-model" is served by the model provider at/);
    err = errorOf(await callTool(client, 'chat', { prompt: 'x', thinking: 'yes' }));
    assert.equal(err.code, 'invalid_arguments');
    // thinking: false asks for nothing, so any provider takes it.
    okText(await callTool(client, 'chat', { prompt: 'x', model: 'kimi-k2-0905-preview', thinking: false }));
    assert.equal('thinking' in kimi.requests()[0].body, false);
    assert.equal(upstreamCount(), 1);
  });

  it('consensus asks each model, streams each answer as it lands, reports a failing model by name, and synthesises', async function () {
    const client = await open();
    glm.set({ status: 503 });
    custom.set({ byModel: { 'slow-model': { delayMs: 1500 } } });
    const res = await callTool(client, 'consensus', {
      prompt: 'Postgres or SQLite?', models: ['slow-model', 'glm-4.6', 'kimi-k2-0905-preview'],
      files: [{ path: 'schema.sql', content: 'create table t();' }],
    });
    const text = okText(res);
    const id = continuationOf(text);
    assert.match(text, /^## slow-model\n\necho: <file path="schema\.sql">/);
    assert.match(text, /\n## glm-4\.6 \(failed: provider_unavailable\)\n\nThe GLM \(Z\.ai\) provider at .* failed \(HTTP 503\); try again shortly\./);
    assert.match(text, /\n## kimi-k2-0905-preview\n\necho: /);
    assert.match(text, /\n## Synthesis \(fake-model\)\n\necho: The question:/);

    // Each answer went out as progress when it landed: Kimi's and GLM's before the slow model's, all before the synthesis.
    const progress = progressOf(client, res.id);
    const at = (re: RegExp) => progress.findIndex((m) => re.test(m));
    const kimiAt = at(/^\[consensus: kimi-k2-0905-preview answered\]\necho: /);
    const glmAt = at(/^\[consensus: glm-4\.6 failed \(provider_unavailable\)\] The GLM/);
    const slowAt = at(/^\[consensus: slow-model answered\]\necho: /);
    const synthesisAt = at(/^\[consensus: fake-model is comparing the answers\]/);
    assert.ok(kimiAt >= 0 && glmAt >= 0 && slowAt >= 0 && synthesisAt >= 0, JSON.stringify(progress));
    assert.ok(kimiAt < slowAt && glmAt < slowAt && slowAt < synthesisAt, JSON.stringify(progress));

    // Every model got the consensus prompt and the files; the synthesis got both answers and the failure.
    const asked = [...custom.requests(), ...glm.requests(), ...kimi.requests()].filter((r) => r.body.messages[0].content === consensusPrompt);
    assert.deepEqual(asked.map((r) => r.model).sort(), ['glm-4.6', 'kimi-k2-0905-preview', 'slow-model']);
    for (const r of asked) assert.match(r.body.messages[1].content, /^<file path="schema\.sql">\ncreate table t\(\);\n<\/file>\n\nPostgres or SQLite\?$/);
    const synthesis = custom.requests().find((r) => r.body.messages[0].content === synthesisPrompt)!;
    assert.equal(synthesis.model, 'fake-model');
    const input = synthesis.body.messages[1].content as string;
    assert.match(input, /^The question:\n\nPostgres or SQLite\?\n\nThe models' answers:\n\n<answer model="slow-model">\necho: /);
    assert.match(input, /<answer model="glm-4\.6" failed="true">\(no answer: provider_unavailable\)<\/answer>/);
    assert.match(input, /<answer model="kimi-k2-0905-preview">\necho: /);

    // The conversation goes on from the synthesis, in any tool.
    okText(await callTool(client, 'chat', { prompt: 'so which?', continuation_id: id }));
    const last = custom.requests().at(-1)!;
    assert.equal(last.body.messages[1].role, 'assistant');
    assert.match(last.body.messages[1].content, /^echo: The question:/);
  });

  it('consensus: 2-5 distinct models; when no model answers it fails naming each; an unknown synthesis model costs nothing', async function () {
    const client = await open();
    for (const models of [['one'], ['a', 'b', 'c', 'd', 'e', 'f'], ['same', 'SAME']]) {
      assert.equal(errorOf(await callTool(client, 'consensus', { prompt: 'q', models })).code, 'invalid_arguments', JSON.stringify(models));
    }
    custom.set({ byModel: { 'bad-a': { status: 500 }, 'bad-b': { models: ['fake-model'] } } });
    const err = errorOf(await callTool(client, 'consensus', { prompt: 'q', models: ['bad-a', 'bad-b'] }));
    assert.equal(err.code, 'consensus_failed');
    assert.match(err.message, /^None of the 2 models answered: bad-a: .*failed \(HTTP 500\).* bad-b: .*does not know the model "bad-b" \(HTTP 404\)/);
    const c2 = await open(await glmOnly());
    const refused = errorOf(await callTool(c2, 'consensus', { prompt: 'q', models: ['glm-4.6', 'glm-4.5'], synthesis_model: 'kimi-k2-0905-preview' }));
    assert.equal(refused.code, 'provider_not_configured');
    assert.match(refused.message, /needs the Kimi \(Moonshot\) provider, which is not configured on this daemon: set KIMI_API_KEY/);
    assert.equal(glm.requests().length, 0, 'nothing was asked');
  });

  it('listmodels: each provider\'s models (GET /models, or the known list), the default, and how to configure a missing provider', async function () {
    const client = await open();
    custom.set({ models: ['fake-model', 'fake-large'] });
    kimi.set({ models: ['kimi-k2-0905-preview', 'kimi-latest'] });
    const all = JSON.parse(okText(await callTool(client, 'listmodels', {})));
    assert.equal(all.default_model, 'fake-model');
    assert.equal(all.default_provider, 'custom');
    const by = new Map(all.providers.map((p: any) => [p.provider, p]));
    assert.deepEqual(by.get('custom'), {
      provider: 'custom', label: 'OpenAI-compatible endpoint', serves: 'every model not routed to Kimi or GLM', features: [],
      configured: true, base_url_host: new URL(custom.baseUrl).host, key_source: "the daemon's environment",
      default_model: 'fake-model', models: ['fake-model', 'fake-large'], source: 'GET /models',
    });
    assert.deepEqual((by.get('kimi') as any).models, ['kimi-k2-0905-preview', 'kimi-latest']);
    assert.deepEqual((by.get('kimi') as any).features, ['web_search']);
    assert.equal(kimi.requests()[0].path, '/v1/models');
    assert.equal(kimi.requests()[0].authorization, `Bearer ${KIMI_KEY}`);
    assert.equal((by.get('glm') as any).source, 'known list (this provider has no GET /models)');
    assert.ok((by.get('glm') as any).models.includes('glm-4.5-flash'));
    assert.deepEqual((by.get('glm') as any).features, ['thinking', 'web_search']);
    assert.equal(glm.requests().length, 0);

    // A failing /models falls back to the known list and says why.
    kimi.set({ status: 500 });
    const failing = JSON.parse(okText(await callTool(client, 'listmodels', {})));
    const k = failing.providers.find((p: any) => p.provider === 'kimi');
    assert.equal(k.source, 'known list (GET /models failed)');
    assert.match(k.error, /failed \(HTTP 500\)/);
    assert.ok(k.models.includes('kimi-k2-0905-preview'));

    // Only GLM configured: the others say how to configure them.
    const c2 = await open(await glmOnly());
    const some = JSON.parse(okText(await callTool(c2, 'listmodels', {})));
    assert.equal(some.default_model, 'glm-4.5-flash');
    assert.equal(some.default_provider, 'glm');
    const kimiEntry = some.providers.find((p: any) => p.provider === 'kimi');
    assert.equal(kimiEntry.configured, false);
    assert.match(kimiEntry.how_to_configure, /^Set KIMI_API_KEY .* then restart the daemon\. With the VS Code extension in local mode: run 'EXAI: Set Provider Key' \(no restart\)\.$/);
    assert.match(some.providers.find((p: any) => p.provider === 'custom').how_to_configure, /^Set EXAI_PROVIDER_BASE_URL/);
  });
});
