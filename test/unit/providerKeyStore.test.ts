// ProviderKeyStore: one SecretStorage entry per provider, JSON {apiKey, baseUrl?}; entries it cannot
// read are treated as unset (never thrown at the user); only its own entries are recognised.
import assert from 'node:assert/strict';
import { ProviderKeyStore, providerOfSecret, type SecretStorageLike } from '../../src/daemon/providerKeyStore';

class MemorySecrets implements SecretStorageLike {
  readonly values = new Map<string, string>();
  async get(key: string) { return this.values.get(key); }
  async store(key: string, value: string) { this.values.set(key, value); }
  async delete(key: string) { this.values.delete(key); }
}

describe('ProviderKeyStore (provider keys in SecretStorage)', function () {
  it('keeps one entry per provider, returns them in a fixed order, and forgets a removed one', async function () {
    const secrets = new MemorySecrets();
    const store = new ProviderKeyStore(secrets);
    await store.set('custom', { apiKey: '', baseUrl: 'http://127.0.0.1:11434/v1' });
    await store.set('glm', { apiKey: 'glm-key-0123456789' });
    assert.deepEqual(await store.all(), [['glm', { apiKey: 'glm-key-0123456789' }], ['custom', { apiKey: '', baseUrl: 'http://127.0.0.1:11434/v1' }]]);
    assert.deepEqual([...secrets.values.keys()].sort(), ['exai.providerKey.custom', 'exai.providerKey.glm']);
    await store.remove('glm');
    assert.equal(await store.get('glm'), null);
    assert.deepEqual((await store.all()).map(([n]) => n), ['custom']);
  });

  it('treats an entry it cannot read as unset', async function () {
    const secrets = new MemorySecrets();
    const store = new ProviderKeyStore(secrets);
    secrets.values.set('exai.providerKey.kimi', 'not json');
    secrets.values.set('exai.providerKey.glm', JSON.stringify({ key: 'x' }));
    assert.deepEqual(await store.all(), []);
  });

  it('recognises only its own secret names', function () {
    assert.equal(providerOfSecret('exai.providerKey.kimi'), 'kimi');
    assert.equal(providerOfSecret('exai.providerKey.openai'), null);
    assert.equal(providerOfSecret('exai.storeKey'), null);
  });
});
