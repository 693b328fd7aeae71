-- Local development only (`supabase db reset` runs this after the migrations): the two test users
-- of the original EXAI plan, so sign-in and per-window switching can be tried at once.
-- Passwords: jazeel@example.com / jazeel-dev-password, michelle@example.com / michelle-dev-password.
-- Never run this on a hosted project: there, `node scripts/create-test-users` creates the same two
-- users through the Auth Admin API, with passwords from the environment (see supabase/README.md).
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, confirmation_token, recovery_token, email_change_token_new, email_change)
values
  ('00000000-0000-0000-0000-000000000000', '3f0c1b2a-7d4e-4c8b-9a51-2e6f8d0b1c11', 'authenticated', 'authenticated', 'jazeel@example.com',
   extensions.crypt('jazeel-dev-password', extensions.gen_salt('bf')), now(), '{"provider":"email","providers":["email"]}', '{}', now(), now(), '', '', '', ''),
  ('00000000-0000-0000-0000-000000000000', '9b2d4e6f-1a3c-4e5b-8d7f-0c1e2a3b4c22', 'authenticated', 'authenticated', 'michelle@example.com',
   extensions.crypt('michelle-dev-password', extensions.gen_salt('bf')), now(), '{"provider":"email","providers":["email"]}', '{}', now(), now(), '', '', '', '')
on conflict (id) do nothing;

insert into auth.identities (id, user_id, provider_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
select gen_random_uuid(), u.id, u.id::text, jsonb_build_object('sub', u.id::text, 'email', u.email, 'email_verified', true), 'email', now(), now(), now()
  from auth.users u
 where u.email in ('jazeel@example.com', 'michelle@example.com')
   and not exists (select 1 from auth.identities i where i.user_id = u.id and i.provider = 'email');
