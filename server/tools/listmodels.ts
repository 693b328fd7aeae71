// `listmodels`: per provider this daemon knows (custom endpoint, Kimi, GLM), whether it is
// configured, the models it serves (its GET /models where it has one, else the known list), the
// features it offers, which model is the default, and for a provider without a key how to configure
// it. Each /models request is bounded (15 s, at most MAX_LISTED_MODELS names) and never retried.
import { z } from 'zod';
import { PROVIDER_CATALOG, type ProviderName, type Providers } from './providers';
import { defineTool, ToolError } from './registry';

const FEATURE_ARGUMENT = { thinking: 'thinking', webSearch: 'web_search' } as const;

export function createListModelsTool(providers: Providers) {
  return defineTool({
    name: 'listmodels',
    title: 'List models',
    // Reads each provider's /models; changes nothing.
    annotations: { readOnlyHint: true, openWorldHint: true },
    description:
      'Lists the models this daemon can use, per provider (its custom OpenAI-compatible endpoint, Kimi/Moonshot, GLM/Z.ai): the models each serves, ' +
      'which model is the default, which features (thinking, web_search) each offers, and for a provider that is not configured, how to configure it. ' +
      'Call it before choosing a model for chat, thinkdeep, codereview, debug, planner, challenge or consensus.',
    input: z.object({}).strict(),
    async run(_args, ctx) {
      const defaultModel = providers.defaultModel();
      let defaultProvider: ProviderName | null = null;
      try {
        defaultProvider = defaultModel ? providers.resolve(defaultModel).endpoint.name : null;
      } catch {
        defaultProvider = null; // the default names a provider that is not configured; resolve() says so when used
      }
      const entries = await Promise.all((Object.keys(PROVIDER_CATALOG) as ProviderName[]).map(async (name) => {
        const about = PROVIDER_CATALOG[name];
        const endpoint = providers.endpoint(name);
        const base = { provider: name, label: about.label, serves: about.serves, features: about.features.map((f) => FEATURE_ARGUMENT[f]) };
        if (!endpoint) return { ...base, configured: false, how_to_configure: about.configure, known_models: about.knownModels };
        const configured = {
          ...base, configured: true, base_url_host: new URL(endpoint.baseUrl).host,
          key_source: endpoint.fromClient ? "set with 'EXAI: Set Provider Key'" : "the daemon's environment",
          ...(defaultProvider === name ? { default_model: defaultModel } : {}),
        };
        if (!about.hasModelsEndpoint) return { ...configured, models: about.knownModels, source: 'known list (this provider has no GET /models)' };
        try {
          return { ...configured, models: await providers.listModels(endpoint, ctx.signal), source: 'GET /models' };
        } catch (err) {
          if (ctx.signal.aborted || !(err instanceof ToolError)) throw err;
          return { ...configured, models: about.knownModels, source: about.knownModels.length > 0 ? 'known list (GET /models failed)' : 'none (GET /models failed)', error: err.message };
        }
      }));
      return JSON.stringify({ default_model: defaultModel, default_provider: defaultProvider, providers: entries }, null, 2);
    },
  });
}
