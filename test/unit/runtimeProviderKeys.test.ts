// RuntimeProviderKeys (server/tools/providerKeys.ts) without a daemon: which endpoint a set or a
// removal leaves in use (a client key replaces the environment's; removing it brings that back), and
// the redactor's set of keys stays bounded while every key in use stays redacted.
import assert from 'node:assert/strict';
import { providerSettings } from '../../server/config';
import { Redactor, createLogger } from '../../server/log';
import { RuntimeProviderKeys } from '../../server/tools/providerKeys';
import { Providers } from '../../server/tools/providers';

const quiet = () => createLogger({ file: null, write() {}, close: async () => {} }, new Redactor());

describe('RuntimeProviderKeys (provider keys set by a local client)', function () {
  it('a client key replaces the environment\'s for that provider; removing it brings the environment\'s back', function () {
    const providers = new Providers(providerSettings({ GLM_API_KEY: 'glm-env-key-0123456789' }));
    const keys = new RuntimeProviderKeys(providers, new Redactor(), quiet());
    assert.deepEqual(keys.set('glm', 'glm-client-key-0123456789', 'http://127.0.0.1:9/v1'), [{ name: 'glm', host: '127.0.0.1:9', source: 'client' }]);
    assert.equal(providers.endpoint('glm')!.apiKey, 'glm-client-key-0123456789');
    assert.equal(providers.endpoint('glm')!.fromClient, true);
    assert.deepEqual(keys.remove('glm'), [{ name: 'glm', host: 'api.z.ai', source: 'environment' }]);
    assert.equal(providers.endpoint('glm')!.apiKey, 'glm-env-key-0123456789');
    // Kimi had none in the environment: set, then removed, it is not configured.
    keys.set('kimi', 'kimi-client-key-0123456789', undefined);
    assert.equal(providers.endpoint('kimi')!.baseUrl, 'https://api.moonshot.ai/v1');
    keys.remove('kimi');
    assert.equal(providers.endpoint('kimi'), undefined);
  });

  it('keeps the keys in use redacted, and a bounded number of replaced ones', function () {
    const redactor = new Redactor();
    const keys = new RuntimeProviderKeys(new Providers(providerSettings({})), redactor, quiet());
    const key = (i: number) => `sk-rotated-key-${String(i).padStart(4, '0')}-abcdefgh`;
    keys.set('glm', 'glm-kept-key-0123456789', undefined);
    for (let i = 0; i < 40; i++) keys.set('custom', key(i), 'http://127.0.0.1:9/v1');
    for (let i = 0; i < 5; i++) keys.set('glm', 'glm-kept-key-0123456789', undefined); // re-given on reconnects: not "replaced"
    const redacted = (value: string) => redactor.redact(value) === '[redacted]';
    assert.ok(redacted(key(39)), 'the key in use');
    assert.ok(redacted('glm-kept-key-0123456789'), 'the other provider\'s key in use');
    assert.ok(redacted(key(38)) && redacted(key(23)), 'the last 16 replaced keys');
    assert.ok(!redacted(key(0)) && !redacted(key(22)), 'older replaced keys are forgotten (the set is bounded)');
  });
});
