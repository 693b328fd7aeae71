// The interactive sign-in: pick a method, answer its prompts, then the flow runs inside a
// cancellable progress notification with a timeout. Every failure ends in a sentence saying what
// happened and what to do.
import * as vscode from 'vscode';
import type { Account, Accounts } from '../auth/accounts';
import { oauthPkceFlow } from '../auth/flows/oauthPkce';
import { otpFlow } from '../auth/flows/otp';
import { passwordFlow } from '../auth/flows/password';
import { CancelledError, type SignInFlow } from '../auth/flows/types';
import { describeAuthError } from '../auth/supabase';
import type { WindowLog } from './log';

const TIMEOUT_MS = { password: 60_000, otp: 10 * 60_000, oauth: 5 * 60_000 };

type Method = keyof typeof TIMEOUT_MS;

export async function signInInteractively(accounts: Accounts, log: WindowLog): Promise<Account | undefined> {
  const method = await vscode.window.showQuickPick(
    [
      { label: '$(mail) Email and password', method: 'password' as Method },
      { label: '$(key) Email one-time code', detail: 'Supabase emails you a 6-digit code.', method: 'otp' as Method },
      { label: '$(github) GitHub', detail: 'Opens your browser.', method: 'oauth' as Method },
    ],
    { title: 'EXAI: Sign In', placeHolder: `How do you want to sign in to ${new URL(accounts.project.url).host}?`, ignoreFocusOut: true },
  );
  if (!method) return undefined;

  let flow: SignInFlow;
  let email: string | undefined;
  if (method.method === 'oauth') {
    flow = oauthPkceFlow('github', {
      asExternalUrl: async (local) => (await vscode.env.asExternalUri(vscode.Uri.parse(local))).toString(true),
      openBrowser: (url) => Promise.resolve(vscode.env.openExternal(vscode.Uri.parse(url, true))),
    });
  } else {
    email = await vscode.window.showInputBox({
      title: 'EXAI: Sign In',
      prompt: 'Email address',
      placeHolder: 'you@example.com',
      ignoreFocusOut: true,
      validateInput: (v) => (/^\S+@\S+\.\S+$/.test(v.trim()) ? undefined : 'Enter an email address.'),
    });
    if (!email) return undefined;
    email = email.trim();
    if (method.method === 'password') {
      const password = await vscode.window.showInputBox({ title: 'EXAI: Sign In', prompt: `Password for ${email}`, password: true, ignoreFocusOut: true });
      if (!password) return undefined;
      flow = passwordFlow(email, password);
    } else {
      const address = email;
      flow = otpFlow(address, () =>
        Promise.resolve(vscode.window.showInputBox({
          title: 'EXAI: Sign In',
          prompt: `Enter the code Supabase sent to ${address}`,
          ignoreFocusOut: true,
          validateInput: (v) => (/^\d{6,10}$/.test(v.trim()) ? undefined : 'The code is the digits from the email.'),
        })),
      );
    }
  }

  const timeoutMs = TIMEOUT_MS[method.method];
  try {
    const account = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'EXAI: signing in…', cancellable: true },
      (_progress, token) => {
        const controller = new AbortController();
        token.onCancellationRequested(() => controller.abort('Sign-in cancelled.'));
        const timer = setTimeout(() => controller.abort(`Sign-in timed out after ${Math.round(timeoutMs / 1000)} s. Try again.`), timeoutMs);
        return accounts.signIn((client) => flow(client, controller.signal)).finally(() => clearTimeout(timer));
      },
    );
    void vscode.window.showInformationMessage(`EXAI: signed in as ${account.email}.`);
    return account;
  } catch (err) {
    if (err instanceof CancelledError && err.message === 'Sign-in cancelled.') return undefined;
    const message = err instanceof CancelledError ? err.message : describeAuthError(err, accounts.project, email);
    log.warn(`sign-in failed: ${message}`);
    // Not awaited: the command finishes now; the notification offers another attempt.
    void vscode.window.showErrorMessage(`EXAI: ${message}`, 'Try Again').then((again) => again && signInInteractively(accounts, log));
    return undefined;
  }
}
