-- 004_levels: the level desks (rollcall-township, -county, -province) — level
-- policy columns (reminder times, sign-off), the filing state per unit and
-- period, the filing log, reminders, escalation rules, and the views that
-- make the waiting visible.  Times written by the level services (ready_at,
-- filed_at, reminded_at, escalation.raised_at) follow the service's clock
-- (config `clock`, controllable in tests); delivered/published times are
-- the database's.  Deadlines are on the period date in Asia/Shanghai taken as
-- a fixed UTC+8 (INTERVAL '+08:00', not the zone name: the tz database gives
-- Shanghai summer time in 1986-1991, which Rollcall's periods ignore).

-- rollcall.level_policy belongs to the rollup's migration 003.  Should this
-- migration run where 003 has not created it, it is created here with the
-- same shape and the PIPELINE.md deadlines, and 003's later columns are its
-- own business.
CREATE TABLE IF NOT EXISTS rollcall.level_policy (
  level    smallint PRIMARY KEY CHECK (level IN (1, 2, 3, 5)),
  deadline time NOT NULL
);
INSERT INTO rollcall.level_policy (level, deadline)
SELECT v.level, v.deadline
  FROM (VALUES (1::smallint, time '10:00'), (2::smallint, time '11:00'),
               (3::smallint, time '12:00'), (5::smallint, time '14:00')) AS v(level, deadline)
 WHERE NOT EXISTS (SELECT 1 FROM rollcall.level_policy);

ALTER TABLE rollcall.level_policy
  ADD COLUMN IF NOT EXISTS reminder_minutes int[] NOT NULL DEFAULT '{60,30}',
  ADD COLUMN IF NOT EXISTS signoff_required boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN rollcall.level_policy.reminder_minutes IS
  'Minutes before the deadline at which the level service reminds the children still missing.';
COMMENT ON COLUMN rollcall.level_policy.signoff_required IS
  'When true a unit''s report waits for `rollcall signoff UNIT PERIOD` instead of being filed '
  'automatically (complete or deadline); see rollcall.v_filing.';

-- One row per (unit, period) a level service has seen a live aggregate for.
CREATE TABLE rollcall.filing (
  unit_code        text NOT NULL,
  period           date NOT NULL,
  level            smallint NOT NULL CHECK (level IN (2, 3, 5)),
  live_version     bigint NOT NULL,
  live_report_id   uuid NOT NULL,
  live_payload     bytea NOT NULL,
  live_expected    int NOT NULL,
  live_reported    int NOT NULL,
  live_missing     int NOT NULL,
  live_complete    boolean NOT NULL,
  live_at          timestamptz NOT NULL,
  source_partition int NOT NULL,
  ready_at         timestamptz,
  ready_reason     text,
  filed_version    bigint,
  filed_report_id  uuid,
  filed_at         timestamptz,
  first_filed_at   timestamptz,
  filed_revised    boolean NOT NULL DEFAULT false,
  filed_by         text,
  filings          int NOT NULL DEFAULT 0,
  signoff_version  bigint,
  signoff_by       text,
  signoff_at       timestamptz,
  reminders_done   smallint NOT NULL DEFAULT 0,
  PRIMARY KEY (unit_code, period)
);
-- The level services' sweeps only look at units with something to do.
CREATE INDEX filing_unfiled_idx ON rollcall.filing (level, period)
 WHERE filed_version IS DISTINCT FROM live_version;
CREATE INDEX filing_incomplete_idx ON rollcall.filing (level, period) WHERE NOT live_complete;
COMMENT ON TABLE rollcall.filing IS
  'A level service''s desk per (unit, period): the newest live aggregate consumed from '
  'rollups.<level> (live_*, payload = the rollcall.Report), when it became ready to file '
  '(complete or deadline), what was filed to reports.<level> (filed_*), the manual sign-off '
  '(signoff_version = the live version the official signed) and how many reminder rounds went out.';

-- Every filed report the level services delivered.
CREATE TABLE rollcall.filing_log (
  report_id    uuid PRIMARY KEY,
  unit_code    text NOT NULL,
  period       date NOT NULL,
  level        smallint NOT NULL,
  version      bigint NOT NULL,
  kind         smallint NOT NULL,
  reason       text NOT NULL CHECK (reason IN ('complete', 'deadline', 'signoff', 'revision')),
  revised      boolean NOT NULL,
  submitter    text NOT NULL,
  expected     int NOT NULL,
  reported     int NOT NULL,
  missing      text[] NOT NULL DEFAULT '{}',
  filed_at     timestamptz NOT NULL,
  delivered_at timestamptz NOT NULL DEFAULT now(),
  topic        text NOT NULL,
  partition    int,
  "offset"     bigint
);
CREATE INDEX filing_log_unit_period_idx ON rollcall.filing_log (unit_code, period);

-- Reminders sent down to missing children (不漏报).
CREATE TABLE rollcall.reminder (
  id             bigserial PRIMARY KEY,
  unit_code      text NOT NULL,
  period         date NOT NULL,
  asked_by_unit  text NOT NULL,
  asked_by_level smallint NOT NULL,
  minutes_before int NOT NULL,
  deadline       timestamptz NOT NULL,
  reminded_at    timestamptz NOT NULL,
  published_at   timestamptz,
  UNIQUE (unit_code, period, asked_by_level, minutes_before)
);
CREATE INDEX reminder_unpublished_idx ON rollcall.reminder (id) WHERE published_at IS NULL;
COMMENT ON TABLE rollcall.reminder IS
  'One row per missing child reminded: unit_code is the child, asked_by_* the unit and level '
  'that asked, minutes_before the reminder round; also published to the reminders topic.';

-- Escalation rules, editable without a restart (the services reload on NOTIFY).
CREATE TABLE rollcall.escalation_rule (
  rule       text PRIMARY KEY,
  kind       text NOT NULL CHECK (kind IN ('threshold', 'missing_after_deadline', 'zero_after', 'copied')),
  indicator  text,
  op         text CHECK (op IN ('>', '>=')),
  threshold  bigint NOT NULL DEFAULT 0 CHECK (threshold >= 0),
  days       int NOT NULL DEFAULT 3,
  levels     smallint[] NOT NULL DEFAULT '{2,3,5}',
  raise_to   smallint,
  enabled    boolean NOT NULL DEFAULT true,
  note       text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE rollcall.escalation_rule IS
  'threshold: indicator op threshold on the live aggregate; missing_after_deadline: more than '
  'threshold children missing at the deadline; zero_after: all indicators 0 today while '
  'indicator > threshold the day before (瞒报); copied: the same non-zero indicators `days` days '
  'running. levels: the levels that evaluate it; raise_to: NULL = the parent level.';
INSERT INTO rollcall.escalation_rule (rule, kind, indicator, op, threshold, days, note) VALUES
  ('confirmed', 'threshold', 'confirmed', '>', 0, 3, 'a confirmed case'),
  ('fever_referred', 'threshold', 'fever_referred', '>=', 10, 3, 'many fever referrals'),
  ('missing_after_deadline', 'missing_after_deadline', NULL, NULL, 0, 3, '漏报: children missing at the deadline'),
  ('zero_after_home_observation', 'zero_after', 'home_observation', NULL, 0, 3,
   '瞒报: zero report while persons were under home observation the day before'),
  ('copied_3_days', 'copied', NULL, NULL, 0, 3, '瞒报: the same non-zero numbers three days running');

ALTER TABLE rollcall.escalation
  ADD COLUMN IF NOT EXISTS raised_by_level smallint,
  ADD COLUMN IF NOT EXISTS published_at timestamptz;
CREATE UNIQUE INDEX IF NOT EXISTS escalation_once_idx ON rollcall.escalation (unit_code, period, rule);
CREATE INDEX IF NOT EXISTS escalation_unpublished_idx ON rollcall.escalation (id) WHERE published_at IS NULL;

-- Editing a policy or a rule wakes the level services (LISTEN rollcall_level_config).
CREATE FUNCTION rollcall.notify_level_config() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('rollcall_level_config', TG_TABLE_NAME);
  RETURN NULL;
END $$;
CREATE TRIGGER escalation_rule_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON rollcall.escalation_rule FOR EACH STATEMENT EXECUTE FUNCTION rollcall.notify_level_config();
CREATE TRIGGER level_policy_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON rollcall.level_policy FOR EACH STATEMENT EXECUTE FUNCTION rollcall.notify_level_config();

CREATE VIEW rollcall.v_filing AS
SELECT f.unit_code,
       CASE f.level WHEN 2 THEN 'township' WHEN 3 THEN 'county' WHEN 5 THEN 'province' END AS level,
       f.period,
       (f.period + p.deadline) AT TIME ZONE INTERVAL '+08:00' AS deadline,
       CASE
         WHEN f.filed_version = f.live_version THEN 'filed'
         WHEN p.signoff_required AND f.ready_at IS NOT NULL
              AND f.signoff_version IS DISTINCT FROM f.live_version THEN 'awaiting_signoff'
         WHEN f.ready_at IS NULL AND f.filed_version IS NULL
              AND f.signoff_version IS DISTINCT FROM f.live_version THEN 'collecting'
         ELSE 'filing'
       END AS status,
       f.live_version,
       f.live_expected AS expected_children,
       f.live_reported AS reported_children,
       f.live_missing AS missing_count,
       f.live_complete AS complete,
       f.ready_at,
       f.ready_reason,
       f.filed_version,
       f.filed_at,
       f.first_filed_at,
       f.filed_revised AS revised,
       f.filed_by,
       f.filings,
       p.signoff_required,
       f.signoff_version,
       f.signoff_by,
       f.signoff_at,
       f.reminders_done
  FROM rollcall.filing f
  JOIN rollcall.level_policy p ON p.level = f.level;
COMMENT ON VIEW rollcall.v_filing IS
  'Each level desk''s state per (unit, period). status: collecting (not complete, deadline not '
  'reached), awaiting_signoff (ready, the level requires a manual sign-off of this version: '
  '`rollcall signoff UNIT PERIOD`), filing (decided, being delivered), filed (the newest live '
  'version is filed). revised: the last filing came after the deadline.';

CREATE VIEW rollcall.v_pending_signoff AS
SELECT unit_code, level, period, deadline, live_version, expected_children, reported_children,
       missing_count, ready_at, filed_version
  FROM rollcall.v_filing
 WHERE status = 'awaiting_signoff';
COMMENT ON VIEW rollcall.v_pending_signoff IS
  'Reports waiting for an official''s sign-off (`rollcall signoff UNIT PERIOD`).';
