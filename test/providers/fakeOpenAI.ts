// A small OpenAI-compatible server for tests: node:http on 127.0.0.1 serving
//   POST <prefix>/chat/completions   (prefix default /v1), streamed (SSE) or not
//   GET  <prefix>/models             the `models` of the behaviour, as an OpenAI model list
// It records every request (path, Authorization header, model, messages, stream flag, the whole JSON
// body) and whether the client went away before the answer was complete (a cancelled or timed-out
// upstream request), and how many requests were open at once.
//
//   const fake = await startFakeOpenAI({ apiKey: 'sk-test-…' });
//   EXAI_PROVIDER_BASE_URL = fake.baseUrl        // http://127.0.0.1:PORT/v1
//   fake.set({ delayMs: 5000 })                   // answer after a delay
//   fake.set({ status: 429 })                     // answer every request with this HTTP error
//   fake.set({ chunks: ['a', 'b'], chunkDelayMs: 1000 })   // a slow stream
//   fake.enqueue({ status: 429, errorHeaders: { 'retry-after': '1' } }, {})  // the next requests, in order
//   fake.set({ byModel: { 'bad-model': { status: 503 } } })                  // per model
//   fake.set({ kimiWebSearch: true })             // answer a $web_search declaration with a tool call first
//   fake.set({ usage: { prompt_tokens: 60, completion_tokens: 40 } })      // the counts a stream reports
//   fake.set({ usagePlacement: 'in-choice' })     // where: OpenAI's last chunk (default), GLM's, Kimi's, or none
//   fake.requests()                               // what arrived
//   fake.maxInFlight()                            // the most requests open at once (since clearRequests)
//   await fake.close();
//
// The reply text by default is `echo: <last user message>`, split in a few chunks. Usage comes as
// real providers send it: a streamed answer reports it only when the request asks with
// `stream_options: {include_usage: true}`, by default as OpenAI does (one last chunk with `choices: []`
// and the top-level `usage`, before [DONE]); the counts default to the request's and the answer's
// characters / 4, rounded up. A request with a
// wrong key gets 401 with an OpenAI-shaped body that quotes the key it got (as OpenAI does, partly),
// so tests can prove the daemon never passes such a body on.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeBehaviour {
  /** Answer every request with this HTTP status and an OpenAI-shaped error body. */
  status?: number;
  /** Extra headers of an error answer (e.g. retry-after). */
  errorHeaders?: Record<string, string>;
  /** Wait this long before the response headers. */
  delayMs?: number;
  /** The answer's chunks (default: `echo: <last user message>` in three parts). */
  chunks?: string[];
  /** Wait this long before each streamed chunk. */
  chunkDelayMs?: number;
  /** Models this server knows (others get 404 model_not_found). Default: any. */
  models?: string[];
  /** Accept only this key from now on (overrides FakeOptions.apiKey): a rotated or revoked key. */
  requireKey?: string;
  /** Behaviour for requests naming these models (replaces the rest for them). */
  byModel?: Record<string, FakeBehaviour>;
  /**
   * Kimi's builtin $web_search: a request that declares `{"type":"builtin_function","function":{"name":"$web_search"}}`
   * and carries no `tool` message yet is answered with a `$web_search` tool call (finish_reason tool_calls).
   */
  kimiWebSearch?: boolean;
  /** The counts a stream reports (default: characters / 4 of the messages and of the answer). */
  usage?: { prompt_tokens: number; completion_tokens: number };
  /**
   * Where a stream's usage goes, when the request asks for it:
   *   'final-chunk' (default) OpenAI: an extra last chunk, `choices: []`, top-level `usage`;
   *   'with-finish'           GLM (api.z.ai): top-level `usage` on the chunk that carries finish_reason;
   *   'in-choice'             Kimi's older answers: `choices[0].usage` on the finish chunk;
   *   'none'                  a server that never reports usage.
   */
  usagePlacement?: 'final-chunk' | 'with-finish' | 'in-choice' | 'none';
}

/** The arguments the fake's $web_search tool call carries (a client must echo them back unchanged). */
export const FAKE_SEARCH_ARGUMENTS = JSON.stringify({ search_result: { search_id: 'fake-search-1' }, usage: { total_tokens: 42 } });

export interface FakeRequest {
  at: number;
  path: string;
  authorization: string | null;
  model: string | null;
  messages: { role: string; content: string; [k: string]: unknown }[];
  stream: boolean;
  /** The whole JSON body (GET: {}), as the tests assert on it. */
  body: Record<string, any>;
  temperature: number | null;
  /** HTTP status answered. */
  status: number | null;
  /** True once the answer was fully written. */
  completed: boolean;
  /** True when the client closed the connection before the answer was complete. */
  clientAborted: boolean;
}

export interface FakeOpenAI {
  url: string;
  /** `${url}/v1`: what EXAI_PROVIDER_BASE_URL / KIMI_API_URL / GLM_API_URL point at. */
  baseUrl: string;
  set(behaviour: FakeBehaviour): void;
  /** The next requests take these behaviours, one each, in order; then `set`'s again. */
  enqueue(...behaviours: FakeBehaviour[]): void;
  requests(): FakeRequest[];
  /** The most requests open at the same time since the last clearRequests(). */
  maxInFlight(): number;
  clearRequests(): void;
  /** Resolves once `n` requests have arrived (bounded). */
  waitForRequests(n: number, timeoutMs?: number): Promise<FakeRequest[]>;
  /** Resolves once the request at `index` was aborted by the client (bounded). */
  waitForAbort(index: number, timeoutMs?: number): Promise<FakeRequest>;
  close(): Promise<void>;
}

export interface FakeOptions {
  /** The accepted key (`Authorization: Bearer <apiKey>`); null accepts any. */
  apiKey: string | null;
  prefix?: string;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

export async function startFakeOpenAI(options: FakeOptions): Promise<FakeOpenAI> {
  const prefix = options.prefix ?? '/v1';
  let behaviour: FakeBehaviour = {};
  const queued: FakeBehaviour[] = [];
  const records: FakeRequest[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const changed = new Set<() => void>();
  const notify = () => { for (const f of [...changed]) f(); };

  const server = http.createServer((req, res) => void handle(req, res).catch(() => res.destroy()));

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    const gone = new AbortController();
    // 'close' on the response before it finished: the client went away (cancel / timeout).
    const record: FakeRequest = {
      at: Date.now(), path, authorization: req.headers.authorization ?? null, model: null, messages: [],
      stream: false, body: {}, temperature: null, status: null, completed: false, clientAborted: false,
    };
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.on('close', () => {
      inFlight--;
      if (!record.completed) { record.clientAborted = true; gone.abort(); notify(); }
    });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: any = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    } catch {
      body = {};
    }
    record.model = typeof body.model === 'string' ? body.model : null;
    record.messages = Array.isArray(body.messages) ? body.messages : [];
    record.stream = body.stream === true;
    record.temperature = typeof body.temperature === 'number' ? body.temperature : null;
    record.body = body && typeof body === 'object' ? body : {};
    records.push(record);
    notify();

    const b = queued.shift() ?? (record.model ? behaviour.byModel?.[record.model] : undefined) ?? behaviour;
    const fail = (status: number, error: Record<string, unknown>, headers: Record<string, string> = {}) => {
      record.status = status;
      record.completed = true;
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ error }));
      notify();
    };
    const listing = req.method === 'GET' && path === `${prefix}/models`;
    if (!listing && (req.method !== 'POST' || path !== `${prefix}/chat/completions`)) return fail(404, { message: `no route ${req.method} ${path}`, type: 'invalid_request_error' });
    const bearer = /^Bearer (.*)$/i.exec(record.authorization ?? '')?.[1] ?? '';
    const wanted = behaviour.requireKey ?? options.apiKey;
    if (wanted !== null && bearer !== wanted) {
      return fail(401, { message: `Incorrect API key provided: ${bearer}. You can find your API key at https://example.invalid.`, type: 'invalid_request_error', code: 'invalid_api_key' });
    }
    if (b.delayMs) await sleep(b.delayMs, gone.signal);
    if (gone.signal.aborted) return;
    if (b.status && b.status >= 400) {
      return fail(b.status, { message: `fake error ${b.status}`, type: b.status === 429 ? 'rate_limit_error' : 'server_error' }, b.errorHeaders);
    }
    if (listing) {
      record.status = 200;
      record.completed = true;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        object: 'list', data: (b.models ?? []).map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'fake' })),
      }));
      notify();
      return;
    }
    if (b.models && !b.models.includes(record.model ?? '')) {
      return fail(404, { message: `The model \`${record.model}\` does not exist or you do not have access to it.`, type: 'invalid_request_error', code: 'model_not_found' });
    }
    const lastUser = [...record.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    const text = `echo: ${lastUser}`;
    const parts = b.chunks ?? [text.slice(0, 6), text.slice(6, Math.max(6, text.length - 3)), text.slice(Math.max(6, text.length - 3))].filter((p) => p !== '');
    const id = `chatcmpl-${records.length}`;
    const created = Math.floor(Date.now() / 1000);
    record.status = 200;
    if (!record.stream) {
      record.completed = true;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        id, object: 'chat.completion', created, model: record.model,
        choices: [{ index: 0, message: { role: 'assistant', content: parts.join('') }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      }));
      notify();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const wantsUsage = body?.stream_options?.include_usage === true;
    const placement = wantsUsage ? (b.usagePlacement ?? 'final-chunk') : 'none';
    const usageOf = (answer: string) => {
      const u = b.usage ?? {
        prompt_tokens: Math.ceil(record.messages.reduce((n, m) => n + String(m.content ?? '').length, 0) / 4),
        completion_tokens: Math.ceil(answer.length / 4),
      };
      return { ...u, total_tokens: u.prompt_tokens + u.completion_tokens };
    };
    const event = (delta: Record<string, unknown>, finish: string | null, answer?: string) => {
      const choice: Record<string, unknown> = { index: 0, delta, finish_reason: finish };
      if (finish && answer !== undefined && placement === 'in-choice') choice.usage = usageOf(answer);
      const chunk: Record<string, unknown> = { id, object: 'chat.completion.chunk', created, model: record.model, choices: [choice] };
      if (finish && answer !== undefined && placement === 'with-finish') chunk.usage = usageOf(answer);
      return `data: ${JSON.stringify(chunk)}\n\n`;
    };
    const usageChunk = (answer: string) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: record.model, choices: [], usage: usageOf(answer) })}\n\n`;
    res.write(event({ role: 'assistant', content: '' }, null));
    const declaresSearch = Array.isArray(body.tools) && body.tools.some((t: any) => t?.type === 'builtin_function' && t?.function?.name === '$web_search');
    if (b.kimiWebSearch && declaresSearch && !record.messages.some((m) => m.role === 'tool')) {
      // As Kimi does: the call's arguments arrive in pieces; the client echoes them back unchanged.
      const half = Math.floor(FAKE_SEARCH_ARGUMENTS.length / 2);
      res.write(event({ tool_calls: [{ index: 0, id: 'call-search-1', type: 'builtin_function', function: { name: '$web_search', arguments: FAKE_SEARCH_ARGUMENTS.slice(0, half) } }] }, null));
      res.write(event({ tool_calls: [{ index: 0, function: { arguments: FAKE_SEARCH_ARGUMENTS.slice(half) } }] }, null));
      res.write(event({}, 'tool_calls', FAKE_SEARCH_ARGUMENTS));
      if (placement === 'final-chunk') res.write(usageChunk(FAKE_SEARCH_ARGUMENTS));
      record.completed = true;
      res.end('data: [DONE]\n\n');
      notify();
      return;
    }
    for (const part of parts) {
      if (b.chunkDelayMs) await sleep(b.chunkDelayMs, gone.signal);
      if (gone.signal.aborted) return;
      res.write(event({ content: part }, null));
    }
    res.write(event({}, 'stop', parts.join('')));
    if (placement === 'final-chunk') res.write(usageChunk(parts.join('')));
    record.completed = true;
    res.end('data: [DONE]\n\n');
    notify();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  const waitUntil = <T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const attempt = () => {
        const v = check();
        if (v === undefined) return false;
        clearTimeout(timer);
        changed.delete(attempt);
        resolve(v);
        return true;
      };
      const timer = setTimeout(() => {
        changed.delete(attempt);
        reject(new Error(`fake OpenAI: ${what} not within ${timeoutMs} ms (requests: ${JSON.stringify(records.map((r) => ({ path: r.path, status: r.status, completed: r.completed, aborted: r.clientAborted })))})`));
      }, timeoutMs);
      if (!attempt()) changed.add(attempt);
    });

  return {
    url,
    baseUrl: `${url}${prefix}`,
    set: (next) => void (behaviour = { ...next }),
    enqueue: (...next) => void queued.push(...next.map((b) => ({ ...b }))),
    requests: () => records.map((r) => ({ ...r, messages: r.messages.map((m) => ({ ...m })), body: structuredClone(r.body) })),
    maxInFlight: () => maxInFlight,
    clearRequests: () => {
      records.splice(0);
      maxInFlight = inFlight;
    },
    waitForRequests: (n, timeoutMs = 10000) => waitUntil(() => (records.length >= n ? records.slice() : undefined), timeoutMs, `${n} requests`),
    waitForAbort: (index, timeoutMs = 10000) => waitUntil(() => (records[index]?.clientAborted ? records[index] : undefined), timeoutMs, `abort of request ${index}`),
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
