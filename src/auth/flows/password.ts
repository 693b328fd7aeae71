// Email + password sign-in (POST /token?grant_type=password).
import { unlessAborted, type SignInFlow } from './types';

export function passwordFlow(email: string, password: string): SignInFlow {
  return async (client, signal) => {
    const { data, error } = await unlessAborted(client.auth.signInWithPassword({ email, password }), signal);
    if (error) throw error;
    if (!data.session) throw new Error('Supabase answered without a session; is email confirmation pending?');
    return data.session;
  };
}
