// The HTTP plumbing of the consent pages: the bounded form body, and the session cookie.
import type http from 'node:http';
import { readBoundedBody } from '../transport/requestBody';

/** The largest form body a page accepts (the biggest real one, a sign-in, is well under 2 KiB). */
export const MAX_FORM_BYTES = 16 * 1024;

export class FormRefused extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Reads an application/x-www-form-urlencoded body of at most `max` bytes; FormRefused (413, 415, 400) otherwise. */
export async function readForm(req: http.IncomingMessage, max = MAX_FORM_BYTES): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new FormRefused(415, 'These pages accept only their own forms (application/x-www-form-urlencoded). Open the page and send the form from there.');
  }
  const text = await readBoundedBody(req, max, {
    tooLarge: () => new FormRefused(413, `The form was larger than ${max} bytes, so it was refused. Open the page again and send the form as it is.`),
    cutOff: () => new FormRefused(400, 'The form was cut off before its end. Send it again.'),
  });
  return new URLSearchParams(text);
}

/** The browser session cookie: opaque, HttpOnly, only sent to /oauth, not on cross-site subrequests. */
export const COOKIE_NAME = 'exai_oauth_session';
const COOKIE_VALUE = /^[A-Za-z0-9_-]{1,100}$/;

/** This request's session cookie value, when it has a well-formed one. */
export function readSessionCookie(req: http.IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== COOKIE_NAME) continue;
    const value = part.slice(eq + 1).trim();
    if (COOKIE_VALUE.test(value)) return value;
  }
  return undefined;
}

export function sessionCookie(value: string, secure: boolean): string {
  return `${COOKIE_NAME}=${value}; Path=/oauth; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${COOKIE_NAME}=; Path=/oauth; HttpOnly; SameSite=Lax; Max-Age=0${secure ? '; Secure' : ''}`;
}
