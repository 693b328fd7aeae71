// Email one-time code: Supabase mails a 6-digit code (POST /otp), the user types it (POST /verify).
// Existing users only: signing in must never create accounts by accident.
import { CancelledError, unlessAborted, type SignInFlow } from './types';

export function otpFlow(email: string, askForCode: () => Promise<string | undefined>): SignInFlow {
  return async (client, signal) => {
    const sent = await unlessAborted(client.auth.signInWithOtp({ email, options: { shouldCreateUser: false } }), signal);
    if (sent.error) throw sent.error;
    const code = await unlessAborted(askForCode(), signal);
    if (!code) throw new CancelledError();
    const { data, error } = await unlessAborted(client.auth.verifyOtp({ email, token: code.trim(), type: 'email' }), signal);
    if (error) throw error;
    if (!data.session) throw new Error('Supabase verified the code but returned no session.');
    return data.session;
  };
}
