-- 007_access: who may read and write what.  One login role per component,
-- each granted only the tables it uses; row-level security on every table
-- a reader can reach, scoped by the unit tree; views that run with the
-- caller's rights; and the dashboard's accounts.
--
-- Roles (cluster-wide, so created only when absent; a second database
-- migrated in the same cluster reuses them).  None is a superuser or owns a
-- table: the tables stay with the migration role (ROLLCALL_PG_DSN).  Their
-- passwords are not set here: deploy/stack.sh (and docker-compose's
-- secrets) set them, so no password is ever in a migration or its checksum.
--
--   rollcall_intake     services/village: the registry and the unit tokens, read-only
--   rollcall_rollup     services/rollup: archive, latest reports, aggregates, outbox
--   rollcall_level      services/level: the desks (filing, reminders, escalations)
--   rollcall_dashboard  services/dashboard: SELECT on what it serves, scoped
--   rollcall_ops        the `rollcall` CLI: status, gaps, replay, dlq, signoff, tokens, users
--
-- Scope.  The dashboard sets, inside each request's transaction,
--   SELECT set_config('rollcall.scope', '<unit code>', true)
-- and sees the subtree of that unit only.  Unit codes are hierarchical
-- (2 province, 4 prefecture, 6 county, 9 township, 12 village digits) and
-- compare byte-wise (COLLATE "C", 003), so a subtree is the index range
--   unit_code >= scope AND unit_code < scope || '~'
-- ('~' sorts after every digit), compared byte-wise whatever the
-- database's locale (the tables of 004 keep the default collation: there
-- the range is a filter and their indexes serve the queries' own keys).
-- rollcall.scope() returns NULL when the
-- setting is unset, empty or not a unit code, and a comparison with NULL
-- is never true: no setting, no rows.  Writer roles get policies that let
-- them do their job (USING (true)); the dashboard only the scoped one.

DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['rollcall_intake', 'rollcall_rollup', 'rollcall_level',
                           'rollcall_dashboard', 'rollcall_ops'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT '
                     'NOREPLICATION NOBYPASSRLS', r);
    END IF;
  END LOOP;
END $$;

-- Nothing by default: PostgreSQL 15 already keeps CREATE on schema public
-- from PUBLIC; the rollcall schema gets USAGE only.
REVOKE ALL ON SCHEMA rollcall FROM PUBLIC;
GRANT USAGE ON SCHEMA rollcall
   TO rollcall_intake, rollcall_rollup, rollcall_level, rollcall_dashboard, rollcall_ops;

-- ------------------------------------------------------------------ scope

CREATE FUNCTION rollcall.scope() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN s ~ '^[0-9]{2}([0-9]{2}([0-9]{2}([0-9]{3}([0-9]{3})?)?)?)?$' THEN s COLLATE "C" END
    FROM (SELECT current_setting('rollcall.scope', true) AS s) x
$$;
COMMENT ON FUNCTION rollcall.scope() IS
  'The request''s unit scope (GUC rollcall.scope) when it is a unit code (2/4/6/9/12 digits), else NULL: '
  'policies compare against it, and a NULL scope matches no row (fail closed).';

-- The upper bound of the scope's code range ('~' sorts after every digit).
CREATE FUNCTION rollcall.scope_end() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT rollcall.scope() || '~'
$$;

-- ------------------------------------------------------------------ accounts

CREATE TABLE rollcall.account (
  name                text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
  unit_code           text COLLATE "C" NOT NULL REFERENCES rollcall.unit (code),
  role                text NOT NULL CHECK (role IN ('viewer', 'signer', 'ops')),
  password_hash       text NOT NULL,
  disabled_at         timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  password_changed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE rollcall.account IS
  'Dashboard accounts (`rollcall user add`). An account sees the subtree of its unit. password_hash is a '
  'libsodium crypto_pwhash string (argon2id), never the password. Disabled accounts cannot sign in, and '
  'their sessions and keys stop working at once.';

-- Sessions and API keys store the SHA-256 (hex) of a 32-byte random secret:
-- the secret is never stored, and a random 256-bit value needs no slow hash.
CREATE TABLE rollcall.account_session (
  token_hash   text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  account      text NOT NULL REFERENCES rollcall.account (name) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  address      text
);
CREATE INDEX account_session_account_idx ON rollcall.account_session (account);
CREATE INDEX account_session_expires_idx ON rollcall.account_session (expires_at);

CREATE TABLE rollcall.account_apikey (
  key_hash     text PRIMARY KEY CHECK (key_hash ~ '^[0-9a-f]{64}$'),
  account      text NOT NULL REFERENCES rollcall.account (name) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz
);
CREATE INDEX account_apikey_account_idx ON rollcall.account_apikey (account);

-- Failed logins, for the rate limit (per account name and per address).
CREATE TABLE rollcall.login_attempt (
  id       bigserial PRIMARY KEY,
  account  text NOT NULL,
  address  text NOT NULL,
  at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempt_account_idx ON rollcall.login_attempt (account, at);
CREATE INDEX login_attempt_address_idx ON rollcall.login_attempt (address, at);

-- ------------------------------------------------------------------ SSE

-- The dashboard's stream: every change of a live aggregate's version is
-- announced on channel rollcall_aggregate as "unit_code parent period
-- version", delivered at the rollup's commit (and at a replay's).  A row
-- trigger (not the rollup's C code) so that every writer announces, and
-- nothing announces what was rolled back.  PostgreSQL folds identical
-- notifications of one transaction into one.
CREATE FUNCTION rollcall.aggregate_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('rollcall_aggregate',
                    NEW.unit_code || ' ' || coalesce(NEW.rollup_parent, '-') || ' ' ||
                    NEW.period::text || ' ' || NEW.version::text);
  RETURN NULL;
END $$;
CREATE TRIGGER aggregate_notify
  AFTER INSERT OR UPDATE OF version ON rollcall.aggregate
  FOR EACH ROW WHEN (NEW.version > 0)
  EXECUTE FUNCTION rollcall.aggregate_notify();

-- ------------------------------------------------------------------ grants

-- Functions run with the caller's rights unless said otherwise; the scope
-- helpers are harmless, the sign-off below is not for everyone.
REVOKE ALL ON ALL TABLES IN SCHEMA rollcall FROM PUBLIC;

-- Intake: the registry and the tokens, read-only.
GRANT SELECT ON rollcall.unit, rollcall.unit_token TO rollcall_intake;

-- Rollup: what services/rollup and lib/rollup_sql.c write in one transaction.
GRANT SELECT ON rollcall.unit, rollcall.level_policy TO rollcall_rollup;
GRANT SELECT, INSERT ON rollcall.report_archive, rollcall.urgent_report, rollcall.urgent_hop,
                        rollcall.dead_letter TO rollcall_rollup;
GRANT SELECT, INSERT, UPDATE ON rollcall.latest_report, rollcall.aggregate,
                                rollcall.consumer_offset TO rollcall_rollup;
GRANT SELECT, INSERT, DELETE ON rollcall.outbox TO rollcall_rollup;
GRANT USAGE ON SEQUENCE rollcall.outbox_id_seq, rollcall.dead_letter_id_seq TO rollcall_rollup;

-- Level desks.
GRANT SELECT ON rollcall.unit, rollcall.level_policy, rollcall.escalation_rule TO rollcall_level;
GRANT SELECT, INSERT, UPDATE ON rollcall.filing, rollcall.reminder, rollcall.escalation,
                                rollcall.consumer_offset TO rollcall_level;
GRANT SELECT, INSERT ON rollcall.filing_log, rollcall.dead_letter TO rollcall_level;
GRANT USAGE ON SEQUENCE rollcall.reminder_id_seq, rollcall.escalation_id_seq,
                        rollcall.dead_letter_id_seq TO rollcall_level;

-- Operators' CLI: reads everything it reports on; writes what status
-- (offset resets), replay (the rollup's tables), dlq, signoff, token and
-- user change.  It does not change the registry or the schema (the
-- migration role does: `rollcall migrate`, `rollcall registry import`).
GRANT SELECT ON ALL TABLES IN SCHEMA rollcall TO rollcall_ops;
REVOKE SELECT ON rollcall.schema_migration FROM rollcall_ops;
GRANT INSERT, UPDATE ON rollcall.report_archive, rollcall.latest_report, rollcall.aggregate,
                        rollcall.urgent_report, rollcall.urgent_hop TO rollcall_ops;
GRANT INSERT, UPDATE, DELETE ON rollcall.consumer_offset TO rollcall_ops;
GRANT INSERT, UPDATE ON rollcall.dead_letter TO rollcall_ops;
GRANT INSERT ON rollcall.outbox TO rollcall_ops;
GRANT UPDATE (signoff_version, signoff_by, signoff_at) ON rollcall.filing TO rollcall_ops;
GRANT INSERT, UPDATE ON rollcall.unit_token TO rollcall_ops;
GRANT INSERT, UPDATE, DELETE ON rollcall.account, rollcall.account_session, rollcall.account_apikey
   TO rollcall_ops;
GRANT DELETE ON rollcall.login_attempt TO rollcall_ops;
GRANT USAGE ON SEQUENCE rollcall.outbox_id_seq, rollcall.dead_letter_id_seq TO rollcall_ops;

-- Dashboard: SELECT on what it serves; its own sessions and login attempts.
-- It never writes a report table: the sign-off goes through
-- rollcall.dashboard_signoff below.
GRANT SELECT ON rollcall.unit, rollcall.aggregate, rollcall.latest_report, rollcall.report_archive,
                rollcall.filing, rollcall.filing_log, rollcall.reminder, rollcall.escalation,
                rollcall.urgent_report, rollcall.urgent_hop, rollcall.level_policy,
                rollcall.escalation_rule,
                rollcall.v_unit_day, rollcall.v_missing, rollcall.v_urgent, rollcall.v_filing,
                rollcall.v_pending_signoff
   TO rollcall_dashboard;
GRANT SELECT ON rollcall.account, rollcall.account_apikey TO rollcall_dashboard;
GRANT SELECT, INSERT, DELETE ON rollcall.account_session, rollcall.login_attempt TO rollcall_dashboard;
GRANT USAGE ON SEQUENCE rollcall.login_attempt_id_seq TO rollcall_dashboard;
-- The dashboard runs a dozen prepared statements over and over, each a
-- large query whose plan does not depend on the unit asked: one generic
-- plan per connection instead of planning every request (the calendar
-- query took longer to plan than to run).
ALTER ROLE rollcall_dashboard SET plan_cache_mode = force_generic_plan;

-- ------------------------------------------------------------------ RLS

-- Every table a reader can reach, keyed by unit code.  Not the outbox,
-- the offsets and the dead letters: no reader has a grant on them, and
-- PostgreSQL refuses COPY FROM into a table with row-level security (the
-- rollup fills the outbox by COPY).  FORCE: the policies
-- bind the tables' owner too unless it is a superuser (which bypasses RLS
-- whatever the table says; the migration role of the embedded stack is one,
-- so no service may use it).
DO $$
DECLARE
  t text;
  col text;
BEGIN
  FOR t, col IN VALUES ('unit', 'code'), ('report_archive', 'unit_code'), ('latest_report', 'unit_code'),
                       ('aggregate', 'unit_code'), ('filing', 'unit_code'), ('filing_log', 'unit_code'),
                       ('reminder', 'unit_code'), ('escalation', 'unit_code'),
                       ('urgent_report', 'unit_code'), ('urgent_hop', 'unit_code') LOOP
    EXECUTE format('ALTER TABLE rollcall.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE rollcall.%I FORCE ROW LEVEL SECURITY', t);
    -- Writers and operators: every row (their grants decide what they may do).
    EXECUTE format('CREATE POLICY writers ON rollcall.%I TO rollcall_rollup, rollcall_level, rollcall_ops '
                   'USING (true) WITH CHECK (true)', t);
    EXECUTE format('CREATE POLICY dashboard_scope ON rollcall.%I FOR SELECT TO rollcall_dashboard '
                   'USING (%I COLLATE "C" >= rollcall.scope() AND %I COLLATE "C" < rollcall.scope_end())',
                   t, col, col);
  END LOOP;
END $$;
-- The intake reads the whole registry (it checks every village's token).
CREATE POLICY intake_read ON rollcall.unit FOR SELECT TO rollcall_intake USING (true);

-- The archive is found by period (BRIN) and report_id; the dashboard's
-- revision history of one village needs (unit_code, period).  Not added:
-- it cost a third of every archive insert (003).  The history endpoint
-- scans the period range of the BRIN for the unit instead.

-- ------------------------------------------------------------------ views

-- A view runs with its owner's rights unless security_invoker is set: the
-- owner here is the migration role, a superuser in the embedded stack, which
-- bypasses every policy.  With it, a view is exactly as scoped as its tables.
ALTER VIEW rollcall.v_unit_day SET (security_invoker = true);
ALTER VIEW rollcall.v_missing SET (security_invoker = true);
ALTER VIEW rollcall.v_urgent SET (security_invoker = true);
ALTER VIEW rollcall.v_filing SET (security_invoker = true);
ALTER VIEW rollcall.v_pending_signoff SET (security_invoker = true);

-- ------------------------------------------------------------------ sign-off

-- The dashboard's one write: a signer signs the version now on its own
-- unit's desk.  SECURITY DEFINER so that the dashboard role needs no UPDATE
-- on rollcall.filing; it signs only the unit that is the request's scope
-- (the account's own unit, set by the dashboard), never one below it.
-- Returns the level, or NULL when there is nothing on the desk.
CREATE FUNCTION rollcall.dashboard_signoff(p_unit text, p_period date, p_by text)
RETURNS smallint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE lvl smallint;
BEGIN
  IF rollcall.scope() IS NULL OR p_unit IS DISTINCT FROM rollcall.scope() THEN
    RAISE EXCEPTION 'sign-off outside the scope' USING ERRCODE = '42501';
  END IF;
  UPDATE rollcall.filing SET signoff_version = live_version, signoff_by = p_by, signoff_at = now()
   WHERE unit_code = p_unit AND period = p_period
  RETURNING level INTO lvl;
  RETURN lvl;
END $$;
REVOKE ALL ON FUNCTION rollcall.dashboard_signoff(text, date, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rollcall.dashboard_signoff(text, date, text) TO rollcall_dashboard;
