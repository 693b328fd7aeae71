// The extension's heavy dependencies, loaded on first use rather than when VS Code loads the
// extension: evaluating supabase-js and ws made up most of activate()'s time (docs/performance.md).
// ws is first needed to connect (after activate() returns), supabase-js to sign in or refresh.
// The production build (esbuild.js) makes each one its own bundle beside dist/extension.js
// (dist/supabase.js, dist/ws.js), so loading the extension does not even parse them.
// Everything else imports their types only (`import type`), never their values.
import type * as SupabaseJs from '@supabase/supabase-js';
import type WebSocket from 'ws';

/** @supabase/supabase-js, loaded on the first call. */
export function supabaseJs(): typeof SupabaseJs {
  return require('@supabase/supabase-js');
}

/** The ws WebSocket class, loaded on the first call. */
export function webSocketClass(): typeof WebSocket {
  return require('ws');
}
