-- 003_rollup: what the rollup service (services/rollup) needs beyond 001:
-- level deadlines, the first receive time of a unit's report (late = its
-- EARLIEST accepted report came after the deadline), village coverage and
-- filing completeness on every aggregate, the urgent-report ledger, and the
-- functions that recompute the live aggregates.
--
-- How the live aggregates stay exact (PIPELINE.md): after each batch has
-- upserted its reports, the rollup locks the aggregate rows of every parent
-- the batch touched, level by level (townships, counties, provinces) and in
-- code order within a level, and recomputes each from its children:
-- a township from its villages' latest reports, a county or province from
-- its children's aggregates (rollcall.refresh_level).  Locking before
-- recomputing means two writers of one parent (a rebalance, a second
-- instance) serialize, and the later one recomputes from the earlier one's
-- committed rows; nothing is ever applied as a difference, so nothing can
-- drift.  rollcall.rebuild_day(period) recomputes a whole day with its own
-- SQL, for repairs and as a check.

CREATE TABLE rollcall.level_policy (
  level    smallint PRIMARY KEY CHECK (level IN (1, 2, 3, 5)),
  deadline time NOT NULL
);
COMMENT ON TABLE rollcall.level_policy IS
  'Per level: the daily deadline (Asia/Shanghai, on the period date). A unit is late for a period when '
  'its earliest accepted DAILY/ZERO report was received after its level''s deadline. Level services add '
  'their own columns (004).';
INSERT INTO rollcall.level_policy (level, deadline) VALUES
  (1, '10:00'), (2, '11:00'), (3, '12:00'), (5, '14:00');

-- Unit codes compare byte-wise (COLLATE "C"): every btree probe and sort on
-- a code then costs a memcmp instead of a locale comparison, which on the
-- rollup's hot path (the primary keys of latest_report and aggregate, the
-- archive index, the registry joins) is most of the index work; and a
-- code prefix is one index range.  Codes are digits, so the order is the
-- same.  The views that depend on the columns are recreated below.
DROP VIEW rollcall.v_missing;
DROP VIEW rollcall.v_unit_day;
ALTER TABLE rollcall.unit
  ALTER COLUMN code TYPE text COLLATE "C",
  ALTER COLUMN parent_code TYPE text COLLATE "C",
  ALTER COLUMN rollup_parent TYPE text COLLATE "C";
ALTER TABLE rollcall.report_archive ALTER COLUMN unit_code TYPE text COLLATE "C";
-- The archive is written once per revision and read by period (verify,
-- replays) or by report_id: a BRIN on period (arrival order follows the
-- period) replaces 001's btree on (period, unit_code), which cost a third of
-- every archive insert.
DROP INDEX rollcall.report_archive_period_unit_idx;
CREATE INDEX report_archive_period_brin ON rollcall.report_archive USING brin (period);
-- latest_report by (period, unit_code) instead of 001's (period, level): a
-- period's rows of one subtree (a township's villages, a county's) are one
-- index range, which is how the rollup recomputes a township; a level is a
-- code length, so "villages of a day" is a filter on that range.
DROP INDEX rollcall.latest_report_period_level_idx;
CREATE INDEX latest_report_period_unit_idx ON rollcall.latest_report (period, unit_code);
ALTER TABLE rollcall.latest_report ALTER COLUMN unit_code TYPE text COLLATE "C";
ALTER TABLE rollcall.aggregate ALTER COLUMN unit_code TYPE text COLLATE "C";

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

-- Earliest receive time of any accepted DAILY/ZERO revision (least(), so a
-- replay in any order gives the same value); late = first_received_at after
-- the deadline.
ALTER TABLE rollcall.latest_report ADD COLUMN first_received_at timestamptz;
COMMENT ON COLUMN rollcall.latest_report.first_received_at IS
  'Earliest received_at over the accepted DAILY/ZERO revisions of (unit, period); late is derived from it.';

ALTER TABLE rollcall.aggregate
  ADD COLUMN rollup_parent       text COLLATE "C",
  ADD COLUMN villages_expected   int NOT NULL DEFAULT 0,
  ADD COLUMN villages_reported   int NOT NULL DEFAULT 0,
  ADD COLUMN villages_zero       int NOT NULL DEFAULT 0,
  ADD COLUMN villages_late       int NOT NULL DEFAULT 0,
  ADD COLUMN filed_children      int,
  ADD COLUMN filed_late_children int,
  ADD COLUMN unfiled_children    text[];
COMMENT ON COLUMN rollcall.aggregate.villages_expected IS
  'Village coverage of the subtree: villages the registry holds beneath the unit ("37 of 40 villages reported").';
COMMENT ON COLUMN rollcall.aggregate.filed_children IS
  'Filing completeness (counties and provinces): children whose level filed a report for the period '
  '(reports.<level>); NULL for townships, whose children (villages) file no separate report.';
COMMENT ON COLUMN rollcall.aggregate.filed_late_children IS
  'Of filed_children: first filed after the child level''s deadline.';
COMMENT ON COLUMN rollcall.aggregate.unfiled_children IS
  'Children (registry) without a filed report for the period, ascending.';

-- Registry children of a parent in code order (index-only when vacuumed).
CREATE INDEX unit_rollup_children_idx ON rollcall.unit (rollup_parent, level, code);

-- Aggregates are rewritten at every batch that touches them: room on the page
-- lets PostgreSQL update them in place (HOT), without touching the indexes.
ALTER TABLE rollcall.aggregate SET (fillfactor = 60);

-- ---------------------------------------------------------------- urgent

CREATE TABLE rollcall.urgent_report (
  report_id     uuid PRIMARY KEY,
  unit_code     text COLLATE "C" NOT NULL,
  period        date NOT NULL,
  incident_type text NOT NULL,
  severity      smallint NOT NULL,
  description   text,
  occurred_at   timestamptz,
  received_at   timestamptz,
  recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX urgent_report_period_unit_idx ON rollcall.urgent_report (period, unit_code);

-- One row per level an urgent report passed (from incident.hops), first
-- sighting wins: the rollup sees the same hop on every later forward.
CREATE TABLE rollcall.urgent_hop (
  report_id   uuid NOT NULL,
  level       smallint NOT NULL,
  unit_code   text NOT NULL,
  at          timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (report_id, level)
);

CREATE VIEW rollcall.v_urgent AS
SELECT r.report_id,
       r.unit_code,
       r.period,
       r.incident_type,
       r.severity,
       r.occurred_at,
       (SELECT h.at FROM rollcall.urgent_hop h WHERE h.report_id = r.report_id AND h.level = 1) AS village_at,
       (SELECT h.at FROM rollcall.urgent_hop h WHERE h.report_id = r.report_id AND h.level = 2) AS township_at,
       (SELECT h.at FROM rollcall.urgent_hop h WHERE h.report_id = r.report_id AND h.level = 3) AS county_at,
       (SELECT h.at FROM rollcall.urgent_hop h WHERE h.report_id = r.report_id AND h.level = 5) AS province_at,
       r.recorded_at,
       r.description,
       (SELECT max(h.recorded_at) FROM rollcall.urgent_hop h WHERE h.report_id = r.report_id) AS last_recorded_at
  FROM rollcall.urgent_report r;
COMMENT ON VIEW rollcall.v_urgent IS
  'Urgent reports with the time each level received them (incident.hops): village_at, township_at, '
  'county_at, province_at (NULL until that hop is seen); recorded_at = when the rollup stored the report.';

-- ---------------------------------------------------------------- helpers
--
-- The functions the rollup calls per batch (lock_parents, refresh_*) work on
-- the batch's parents only: the batch drives every join (LATERAL, with
-- OFFSET 0 so the planner cannot flatten and reorder it) and the
-- plans are pinned to index lookups (enable_seqscan/hashjoin/mergejoin off),
-- so the cost follows the batch and not the size of the tables — and never
-- a plan made from statistics taken while a table was still empty.

-- Sum of integer-valued jsonb objects (the extra indicators), in one
-- set-based pass per parent; zero totals are dropped (an absent name is 0).
CREATE FUNCTION rollcall.jsonb_sum_array(objs jsonb[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(jsonb_object_agg(k, s), '{}'::jsonb)
    FROM (SELECT e.key AS k, sum(e.value::numeric)::bigint AS s
            FROM unnest(objs) AS o(j), jsonb_each_text(o.j) AS e
           GROUP BY e.key) y
   WHERE s <> 0
$$;


-- Aggregate versions.  A filed report is a snapshot of its aggregate, and
-- the level services and every consumer tell snapshots apart by version, so
-- the version must rise whenever the aggregate changes — including when an
-- older child revision arrives late (a replay, another partition's backlog),
-- which a maximum would not show.  The version is therefore
--   period start + the sum over the villages beneath of (version - period start)
-- (each term at least 1): deterministic for a given set of latest reports,
-- strictly larger whenever any village's latest report is replaced or a new
-- village reports, and a county's (province's) version is the same formula
-- over its children's versions.  One village alone keeps its own version.
-- Village versions are receive times on or after the period's start (the
-- intake refuses future periods), so the terms are small: a province's
-- 70,000 villages corrected a year late stay far inside bigint.
CREATE FUNCTION rollcall.period_start_us(day date) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
  SELECT (extract(epoch FROM day::timestamp AT TIME ZONE 'Asia/Shanghai') * 1000000)::bigint
$$;

-- Recomputes the live aggregates of townships from their villages' latest
-- DAILY/ZERO reports (PIPELINE.md): expected = the registry's villages
-- (unit.expected_children),
-- reported/zero/late = villages with a latest report / of kind ZERO / late,
-- missing = the others, ascending; zone counts and sums over the latest
-- reports; version = the version sum above.  Same contract as
-- refresh_parents (the caller has locked the rows).
CREATE FUNCTION rollcall.refresh_townships(codes text[], periods date[]) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $fn$
DECLARE
  n bigint;
BEGIN
  INSERT INTO rollcall.aggregate AS a
        (unit_code, period, level, rollup_parent, version, expected_children, reported_children,
         zero_children, late_children, missing_children, zone_normal, zone_prevention,
         zone_control, zone_lockdown, villages_expected, villages_reported, villages_zero,
         villages_late, households_visited, persons_screened, temperature_checks, arrivals_risk_areas, arrivals_abroad, investigation_requests, close_contacts, secondary_contacts, cold_chain_workers, released_observation, home_observation, central_isolation, fever_referred, suspected, confirmed, asymptomatic, nucleic_acid_sampled, vaccinated, elderly_alone, disabled, pregnant, left_behind_children, orphans, hardship_households, tenants, assistance_granted, gatherings_postponed, staff_on_duty, volunteers, masks, thermometers, disinfectant_kg, extra, updated_at)
  SELECT p.code, p.period, 2, left(p.code, 6), g.version, t.expected_children, g.reported,
         g.zero, g.late,
         -- the villages without a report, only where some are missing
         CASE WHEN g.reported >= t.expected_children THEN '{}'::text[]
              ELSE ARRAY(SELECT m.code FROM rollcall.unit m
                          WHERE m.rollup_parent = p.code AND m.level = 1
                            AND m.code <> ALL (coalesce(g.codes, '{}'))
                          ORDER BY m.code) END,
         g.z1, g.z2, g.z3, g.z4, t.expected_children, g.reported, g.zero, g.late,
         g.households_visited,
         g.persons_screened,
         g.temperature_checks,
         g.arrivals_risk_areas,
         g.arrivals_abroad,
         g.investigation_requests,
         g.close_contacts,
         g.secondary_contacts,
         g.cold_chain_workers,
         g.released_observation,
         g.home_observation,
         g.central_isolation,
         g.fever_referred,
         g.suspected,
         g.confirmed,
         g.asymptomatic,
         g.nucleic_acid_sampled,
         g.vaccinated,
         g.elderly_alone,
         g.disabled,
         g.pregnant,
         g.left_behind_children,
         g.orphans,
         g.hardship_households,
         g.tenants,
         g.assistance_granted,
         g.gatherings_postponed,
         g.staff_on_duty,
         g.volunteers,
         g.masks,
         g.thermometers,
         g.disinfectant_kg,
         g.extra, now()
    FROM unnest(codes, periods) AS p(code, period)
    CROSS JOIN LATERAL (SELECT c.expected_children FROM rollcall.unit c WHERE c.code = p.code
                        OFFSET 0) t
    -- a township's villages are one range of (period, unit_code): their codes
    -- extend the township's (';' sorts right after the digits)
    CROSS JOIN LATERAL (
          SELECT CASE WHEN count(*) = 0 THEN 0
                      ELSE rollcall.period_start_us(p.period)
                           + sum(greatest(l.version - rollcall.period_start_us(p.period), 1))::bigint
                 END AS version,
                 count(*)::int AS reported,
                 count(*) FILTER (WHERE l.kind = 2)::int AS zero,
                 count(*) FILTER (WHERE l.late)::int AS late,
                 count(*) FILTER (WHERE l.zone_status = 1)::int AS z1,
                 count(*) FILTER (WHERE l.zone_status = 2)::int AS z2,
                 count(*) FILTER (WHERE l.zone_status = 3)::int AS z3,
                 count(*) FILTER (WHERE l.zone_status = 4)::int AS z4,
                 coalesce(sum(l.households_visited), 0)::bigint AS households_visited,
                 coalesce(sum(l.persons_screened), 0)::bigint AS persons_screened,
                 coalesce(sum(l.temperature_checks), 0)::bigint AS temperature_checks,
                 coalesce(sum(l.arrivals_risk_areas), 0)::bigint AS arrivals_risk_areas,
                 coalesce(sum(l.arrivals_abroad), 0)::bigint AS arrivals_abroad,
                 coalesce(sum(l.investigation_requests), 0)::bigint AS investigation_requests,
                 coalesce(sum(l.close_contacts), 0)::bigint AS close_contacts,
                 coalesce(sum(l.secondary_contacts), 0)::bigint AS secondary_contacts,
                 coalesce(sum(l.cold_chain_workers), 0)::bigint AS cold_chain_workers,
                 coalesce(sum(l.released_observation), 0)::bigint AS released_observation,
                 coalesce(sum(l.home_observation), 0)::bigint AS home_observation,
                 coalesce(sum(l.central_isolation), 0)::bigint AS central_isolation,
                 coalesce(sum(l.fever_referred), 0)::bigint AS fever_referred,
                 coalesce(sum(l.suspected), 0)::bigint AS suspected,
                 coalesce(sum(l.confirmed), 0)::bigint AS confirmed,
                 coalesce(sum(l.asymptomatic), 0)::bigint AS asymptomatic,
                 coalesce(sum(l.nucleic_acid_sampled), 0)::bigint AS nucleic_acid_sampled,
                 coalesce(sum(l.vaccinated), 0)::bigint AS vaccinated,
                 coalesce(sum(l.elderly_alone), 0)::bigint AS elderly_alone,
                 coalesce(sum(l.disabled), 0)::bigint AS disabled,
                 coalesce(sum(l.pregnant), 0)::bigint AS pregnant,
                 coalesce(sum(l.left_behind_children), 0)::bigint AS left_behind_children,
                 coalesce(sum(l.orphans), 0)::bigint AS orphans,
                 coalesce(sum(l.hardship_households), 0)::bigint AS hardship_households,
                 coalesce(sum(l.tenants), 0)::bigint AS tenants,
                 coalesce(sum(l.assistance_granted), 0)::bigint AS assistance_granted,
                 coalesce(sum(l.gatherings_postponed), 0)::bigint AS gatherings_postponed,
                 coalesce(sum(l.staff_on_duty), 0)::bigint AS staff_on_duty,
                 coalesce(sum(l.volunteers), 0)::bigint AS volunteers,
                 coalesce(sum(l.masks), 0)::bigint AS masks,
                 coalesce(sum(l.thermometers), 0)::bigint AS thermometers,
                 coalesce(sum(l.disinfectant_kg), 0)::bigint AS disinfectant_kg,
                 rollcall.jsonb_sum_array(array_agg(l.extra) FILTER (WHERE l.extra <> '{}'::jsonb)) AS extra,
                 array_agg(l.unit_code) AS codes
            FROM rollcall.latest_report l
           WHERE l.period = p.period AND l.unit_code > p.code AND l.unit_code < p.code || ';'
             AND l.level = 1 AND l.kind IN (1, 2)) g
  ON CONFLICT (unit_code, period) DO UPDATE SET
    version = excluded.version, expected_children = excluded.expected_children,
    reported_children = excluded.reported_children, zero_children = excluded.zero_children,
    late_children = excluded.late_children, missing_children = excluded.missing_children,
    zone_normal = excluded.zone_normal, zone_prevention = excluded.zone_prevention,
    zone_control = excluded.zone_control, zone_lockdown = excluded.zone_lockdown,
    villages_expected = excluded.villages_expected, villages_reported = excluded.villages_reported,
    villages_zero = excluded.villages_zero, villages_late = excluded.villages_late,
    households_visited = excluded.households_visited,
    persons_screened = excluded.persons_screened,
    temperature_checks = excluded.temperature_checks,
    arrivals_risk_areas = excluded.arrivals_risk_areas,
    arrivals_abroad = excluded.arrivals_abroad,
    investigation_requests = excluded.investigation_requests,
    close_contacts = excluded.close_contacts,
    secondary_contacts = excluded.secondary_contacts,
    cold_chain_workers = excluded.cold_chain_workers,
    released_observation = excluded.released_observation,
    home_observation = excluded.home_observation,
    central_isolation = excluded.central_isolation,
    fever_referred = excluded.fever_referred,
    suspected = excluded.suspected,
    confirmed = excluded.confirmed,
    asymptomatic = excluded.asymptomatic,
    nucleic_acid_sampled = excluded.nucleic_acid_sampled,
    vaccinated = excluded.vaccinated,
    elderly_alone = excluded.elderly_alone,
    disabled = excluded.disabled,
    pregnant = excluded.pregnant,
    left_behind_children = excluded.left_behind_children,
    orphans = excluded.orphans,
    hardship_households = excluded.hardship_households,
    tenants = excluded.tenants,
    assistance_granted = excluded.assistance_granted,
    gatherings_postponed = excluded.gatherings_postponed,
    staff_on_duty = excluded.staff_on_duty,
    volunteers = excluded.volunteers,
    masks = excluded.masks,
    thermometers = excluded.thermometers,
    disinfectant_kg = excluded.disinfectant_kg,
    extra = excluded.extra,
    updated_at = now()
  WHERE (a.version, a.expected_children, a.reported_children, a.zero_children, a.late_children,
         a.missing_children, a.zone_normal, a.zone_prevention, a.zone_control, a.zone_lockdown,
         a.households_visited, a.persons_screened, a.temperature_checks, a.arrivals_risk_areas, a.arrivals_abroad, a.investigation_requests, a.close_contacts, a.secondary_contacts, a.cold_chain_workers, a.released_observation, a.home_observation, a.central_isolation, a.fever_referred, a.suspected, a.confirmed, a.asymptomatic, a.nucleic_acid_sampled, a.vaccinated, a.elderly_alone, a.disabled, a.pregnant, a.left_behind_children, a.orphans, a.hardship_households, a.tenants, a.assistance_granted, a.gatherings_postponed, a.staff_on_duty, a.volunteers, a.masks, a.thermometers, a.disinfectant_kg, a.extra)
        IS DISTINCT FROM
        (excluded.version, excluded.expected_children, excluded.reported_children,
         excluded.zero_children, excluded.late_children, excluded.missing_children,
         excluded.zone_normal, excluded.zone_prevention, excluded.zone_control,
         excluded.zone_lockdown, excluded.households_visited, excluded.persons_screened, excluded.temperature_checks, excluded.arrivals_risk_areas, excluded.arrivals_abroad, excluded.investigation_requests, excluded.close_contacts, excluded.secondary_contacts, excluded.cold_chain_workers, excluded.released_observation, excluded.home_observation, excluded.central_isolation, excluded.fever_referred, excluded.suspected, excluded.confirmed, excluded.asymptomatic, excluded.nucleic_acid_sampled, excluded.vaccinated, excluded.elderly_alone, excluded.disabled, excluded.pregnant, excluded.left_behind_children, excluded.orphans, excluded.hardship_households, excluded.tenants, excluded.assistance_granted, excluded.gatherings_postponed, excluded.staff_on_duty, excluded.volunteers, excluded.masks, excluded.thermometers, excluded.disinfectant_kg, excluded.extra);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$fn$;

-- Recomputes the live aggregates of counties (level 3) or provinces (level 5)
-- from their children's aggregates (PIPELINE.md): sums over all villages
-- beneath; a child is reported when complete, zero when complete and every
-- village beneath reported ZERO, late when complete and any village beneath
-- is late; missing = children not complete, ascending.  villages_expected
-- comes from the caller (registry subtree sizes).  Rows change only when a
-- value changes, and then get updated_at = now() (the outbox selects them).
-- The caller locks the parents' rows first (rollcall.lock_parents).
-- Returns the number of rows written.
CREATE FUNCTION rollcall.refresh_parents(parent_level smallint, codes text[], periods date[],
                                         villages int[]) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $fn$
DECLARE
  child_level smallint := CASE parent_level WHEN 3 THEN 2 WHEN 5 THEN 3 END;
  n bigint;
BEGIN
  INSERT INTO rollcall.aggregate AS a
        (unit_code, period, level, rollup_parent, version, expected_children, reported_children, zero_children, late_children, missing_children, zone_normal, zone_prevention, zone_control, zone_lockdown, villages_expected, villages_reported, villages_zero, villages_late, households_visited, persons_screened, temperature_checks, arrivals_risk_areas, arrivals_abroad, investigation_requests, close_contacts, secondary_contacts, cold_chain_workers, released_observation, home_observation, central_isolation, fever_referred, suspected, confirmed, asymptomatic, nucleic_acid_sampled, vaccinated, elderly_alone, disabled, pregnant, left_behind_children, orphans, hardship_households, tenants, assistance_granted, gatherings_postponed, staff_on_duty, volunteers, masks, thermometers, disinfectant_kg, extra, updated_at)
  SELECT p.code, p.period, parent_level,
         CASE WHEN parent_level = 3 THEN left(p.code, 2) END,
         coalesce(rollcall.period_start_us(p.period)
                  + sum(t.version - rollcall.period_start_us(p.period))
                      FILTER (WHERE t.version > 0)::bigint, 0),
         count(*)::int,
         count(*) FILTER (WHERE t.villages_reported >= t.villages_expected AND t.villages_expected > 0)::int,
         count(*) FILTER (WHERE t.villages_reported >= t.villages_expected AND t.villages_expected > 0
                                AND t.villages_zero = t.villages_expected)::int,
         count(*) FILTER (WHERE t.villages_reported >= t.villages_expected AND t.villages_expected > 0
                                AND t.villages_late > 0)::int,
         coalesce(array_agg(u.code ORDER BY u.code)
                    FILTER (WHERE t.unit_code IS NULL OR t.villages_reported < t.villages_expected
                                  OR t.villages_expected = 0), '{}'),
         coalesce(sum(t.zone_normal), 0), coalesce(sum(t.zone_prevention), 0),
         coalesce(sum(t.zone_control), 0), coalesce(sum(t.zone_lockdown), 0),
         p.villages,
         coalesce(sum(t.villages_reported), 0), coalesce(sum(t.villages_zero), 0),
         coalesce(sum(t.villages_late), 0),
       coalesce(sum(t.households_visited), 0)::bigint,
       coalesce(sum(t.persons_screened), 0)::bigint,
       coalesce(sum(t.temperature_checks), 0)::bigint,
       coalesce(sum(t.arrivals_risk_areas), 0)::bigint,
       coalesce(sum(t.arrivals_abroad), 0)::bigint,
       coalesce(sum(t.investigation_requests), 0)::bigint,
       coalesce(sum(t.close_contacts), 0)::bigint,
       coalesce(sum(t.secondary_contacts), 0)::bigint,
       coalesce(sum(t.cold_chain_workers), 0)::bigint,
       coalesce(sum(t.released_observation), 0)::bigint,
       coalesce(sum(t.home_observation), 0)::bigint,
       coalesce(sum(t.central_isolation), 0)::bigint,
       coalesce(sum(t.fever_referred), 0)::bigint,
       coalesce(sum(t.suspected), 0)::bigint,
       coalesce(sum(t.confirmed), 0)::bigint,
       coalesce(sum(t.asymptomatic), 0)::bigint,
       coalesce(sum(t.nucleic_acid_sampled), 0)::bigint,
       coalesce(sum(t.vaccinated), 0)::bigint,
       coalesce(sum(t.elderly_alone), 0)::bigint,
       coalesce(sum(t.disabled), 0)::bigint,
       coalesce(sum(t.pregnant), 0)::bigint,
       coalesce(sum(t.left_behind_children), 0)::bigint,
       coalesce(sum(t.orphans), 0)::bigint,
       coalesce(sum(t.hardship_households), 0)::bigint,
       coalesce(sum(t.tenants), 0)::bigint,
       coalesce(sum(t.assistance_granted), 0)::bigint,
       coalesce(sum(t.gatherings_postponed), 0)::bigint,
       coalesce(sum(t.staff_on_duty), 0)::bigint,
       coalesce(sum(t.volunteers), 0)::bigint,
       coalesce(sum(t.masks), 0)::bigint,
       coalesce(sum(t.thermometers), 0)::bigint,
       coalesce(sum(t.disinfectant_kg), 0)::bigint,
         rollcall.jsonb_sum_array(array_agg(t.extra) FILTER (WHERE t.extra <> '{}'::jsonb)),
         now()
    FROM unnest(codes, periods, villages) AS p(code, period, villages)
    CROSS JOIN LATERAL (SELECT c.code FROM rollcall.unit c
                         WHERE c.rollup_parent = p.code AND c.level = child_level OFFSET 0) u
    LEFT JOIN LATERAL (SELECT * FROM rollcall.aggregate x
                        WHERE x.unit_code = u.code AND x.period = p.period OFFSET 0) t ON true
   GROUP BY p.code, p.period, p.villages
   ORDER BY p.code, p.period
  ON CONFLICT (unit_code, period) DO UPDATE SET
    version = excluded.version,
    expected_children = excluded.expected_children,
    reported_children = excluded.reported_children,
    zero_children = excluded.zero_children,
    late_children = excluded.late_children,
    missing_children = excluded.missing_children,
    zone_normal = excluded.zone_normal,
    zone_prevention = excluded.zone_prevention,
    zone_control = excluded.zone_control,
    zone_lockdown = excluded.zone_lockdown,
    villages_expected = excluded.villages_expected,
    villages_reported = excluded.villages_reported,
    villages_zero = excluded.villages_zero,
    villages_late = excluded.villages_late,
    households_visited = excluded.households_visited,
    persons_screened = excluded.persons_screened,
    temperature_checks = excluded.temperature_checks,
    arrivals_risk_areas = excluded.arrivals_risk_areas,
    arrivals_abroad = excluded.arrivals_abroad,
    investigation_requests = excluded.investigation_requests,
    close_contacts = excluded.close_contacts,
    secondary_contacts = excluded.secondary_contacts,
    cold_chain_workers = excluded.cold_chain_workers,
    released_observation = excluded.released_observation,
    home_observation = excluded.home_observation,
    central_isolation = excluded.central_isolation,
    fever_referred = excluded.fever_referred,
    suspected = excluded.suspected,
    confirmed = excluded.confirmed,
    asymptomatic = excluded.asymptomatic,
    nucleic_acid_sampled = excluded.nucleic_acid_sampled,
    vaccinated = excluded.vaccinated,
    elderly_alone = excluded.elderly_alone,
    disabled = excluded.disabled,
    pregnant = excluded.pregnant,
    left_behind_children = excluded.left_behind_children,
    orphans = excluded.orphans,
    hardship_households = excluded.hardship_households,
    tenants = excluded.tenants,
    assistance_granted = excluded.assistance_granted,
    gatherings_postponed = excluded.gatherings_postponed,
    staff_on_duty = excluded.staff_on_duty,
    volunteers = excluded.volunteers,
    masks = excluded.masks,
    thermometers = excluded.thermometers,
    disinfectant_kg = excluded.disinfectant_kg,
    extra = excluded.extra,
    updated_at = now()
  WHERE (a.version, a.expected_children, a.reported_children, a.zero_children, a.late_children, a.missing_children, a.zone_normal, a.zone_prevention, a.zone_control, a.zone_lockdown, a.villages_expected, a.villages_reported, a.villages_zero, a.villages_late, a.households_visited, a.persons_screened, a.temperature_checks, a.arrivals_risk_areas, a.arrivals_abroad, a.investigation_requests, a.close_contacts, a.secondary_contacts, a.cold_chain_workers, a.released_observation, a.home_observation, a.central_isolation, a.fever_referred, a.suspected, a.confirmed, a.asymptomatic, a.nucleic_acid_sampled, a.vaccinated, a.elderly_alone, a.disabled, a.pregnant, a.left_behind_children, a.orphans, a.hardship_households, a.tenants, a.assistance_granted, a.gatherings_postponed, a.staff_on_duty, a.volunteers, a.masks, a.thermometers, a.disinfectant_kg, a.extra)
        IS DISTINCT FROM
        (excluded.version, excluded.expected_children, excluded.reported_children, excluded.zero_children, excluded.late_children, excluded.missing_children, excluded.zone_normal, excluded.zone_prevention, excluded.zone_control, excluded.zone_lockdown, excluded.villages_expected, excluded.villages_reported, excluded.villages_zero, excluded.villages_late, excluded.households_visited, excluded.persons_screened, excluded.temperature_checks, excluded.arrivals_risk_areas, excluded.arrivals_abroad, excluded.investigation_requests, excluded.close_contacts, excluded.secondary_contacts, excluded.cold_chain_workers, excluded.released_observation, excluded.home_observation, excluded.central_isolation, excluded.fever_referred, excluded.suspected, excluded.confirmed, excluded.asymptomatic, excluded.nucleic_acid_sampled, excluded.vaccinated, excluded.elderly_alone, excluded.disabled, excluded.pregnant, excluded.left_behind_children, excluded.orphans, excluded.hardship_households, excluded.tenants, excluded.assistance_granted, excluded.gatherings_postponed, excluded.staff_on_duty, excluded.volunteers, excluded.masks, excluded.thermometers, excluded.disinfectant_kg, excluded.extra);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$fn$;

-- Makes sure every (parent, period) row exists and locks them all in code
-- order, so two rollup instances never recompute one parent from each other's
-- uncommitted children (the later one waits, then sees the earlier one's
-- commit).  Returns the rows it created (their filing columns need a first
-- computation).
CREATE FUNCTION rollcall.lock_parents(parent_level smallint, codes text[], periods date[])
RETURNS TABLE (unit_code text, period date)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $fn$
BEGIN
  RETURN QUERY
  INSERT INTO rollcall.aggregate AS a (unit_code, period, level, rollup_parent, version)
  SELECT p.code, p.period, parent_level,
         CASE parent_level WHEN 2 THEN left(p.code, 6) WHEN 3 THEN left(p.code, 2) END, 0
    FROM unnest(codes, periods) AS p(code, period)
   ORDER BY 1, 2
  ON CONFLICT ON CONSTRAINT aggregate_pkey DO NOTHING
  RETURNING a.unit_code, a.period;
  PERFORM 1
     FROM (SELECT * FROM unnest(codes, periods) AS q(code, period) ORDER BY 1, 2) p
    CROSS JOIN LATERAL (SELECT 1 FROM rollcall.aggregate a
                         WHERE a.unit_code = p.code AND a.period = p.period FOR UPDATE) x;
END
$fn$;

-- Filing completeness of counties (children: townships) or provinces
-- (children: counties) from the children's filed reports in latest_report.
-- Returns the number of rows changed.
CREATE FUNCTION rollcall.refresh_filing(parent_level smallint, codes text[], periods date[])
RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $fn$
DECLARE
  child_level smallint := CASE parent_level WHEN 3 THEN 2 WHEN 5 THEN 3 END;
  n bigint;
BEGIN
  UPDATE rollcall.aggregate a
     SET filed_children = f.filed, filed_late_children = f.late, unfiled_children = f.unfiled
    FROM (SELECT p.code, p.period,
                 count(l.unit_code)::int AS filed,
                 count(*) FILTER (WHERE l.late)::int AS late,
                 coalesce(array_agg(u.code ORDER BY u.code) FILTER (WHERE l.unit_code IS NULL), '{}') AS unfiled
            FROM unnest(codes, periods) AS p(code, period)
            CROSS JOIN LATERAL (SELECT c.code FROM rollcall.unit c
                                 WHERE c.rollup_parent = p.code AND c.level = child_level
                                OFFSET 0) u
            LEFT JOIN LATERAL (SELECT x.unit_code, x.late FROM rollcall.latest_report x
                                WHERE x.period = p.period AND x.unit_code = u.code
                                  AND x.level = child_level OFFSET 0) l ON true
           GROUP BY 1, 2) f
   WHERE a.unit_code = f.code AND a.period = f.period
     AND (a.filed_children, a.filed_late_children, a.unfiled_children)
         IS DISTINCT FROM (f.filed, f.late, f.unfiled);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$fn$;

-- One parent level for one batch: locks every parent the batch touches in
-- code order, recomputes the live aggregate of all of them (codes; counties
-- and provinces with their villages_expected), and, for counties and
-- provinces, the filing completeness of those named in filing_codes and of
-- the rows just created.  Returns the number of live
-- aggregates that changed.
CREATE FUNCTION rollcall.refresh_level(parent_level smallint, codes text[], periods date[],
                                       villages int[], filing_codes text[], filing_periods date[])
RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
  n bigint := 0;
  new_codes text[];
  new_periods date[];
BEGIN
  IF coalesce(cardinality(codes), 0) = 0 THEN
    RETURN 0;
  END IF;
  SELECT coalesce(array_agg(c.unit_code), '{}'), coalesce(array_agg(c.period), '{}')
    INTO new_codes, new_periods
    FROM rollcall.lock_parents(parent_level, codes, periods) AS c;
  IF parent_level = 2 THEN
    RETURN rollcall.refresh_townships(codes, periods);
  END IF;
  n := rollcall.refresh_parents(parent_level, codes, periods, villages);
  IF cardinality(filing_codes) > 0 OR cardinality(new_codes) > 0 THEN
    PERFORM rollcall.refresh_filing(parent_level, filing_codes || new_codes,
                                    filing_periods || new_periods);
  END IF;
  RETURN n;
END
$fn$;

-- Dead letters travel to reports.dlq through the outbox, with their Kafka
-- headers (topic, partition, offset, reason) as a JSON object of strings.
ALTER TABLE rollcall.outbox ADD COLUMN headers jsonb;
COMMENT ON COLUMN rollcall.outbox.headers IS
  'Kafka headers of the message (name -> string), e.g. a dead letter''s topic, partition, offset, reason.';

-- Recomputes every aggregate of one period from latest_report and the
-- registry, ignoring what is stored (repair after a manual change, and the
-- tests' independent check of the incremental path).  Returns the number of
-- aggregate rows written.
CREATE FUNCTION rollcall.rebuild_day(day date) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
  n bigint := 0;
  m bigint;
  c text[]; p date[]; v int[];
BEGIN
  DELETE FROM rollcall.aggregate WHERE period = day;
  INSERT INTO rollcall.aggregate
        (unit_code, period, level, rollup_parent, version, expected_children, reported_children, zero_children, late_children, missing_children, zone_normal, zone_prevention, zone_control, zone_lockdown, villages_expected, villages_reported, villages_zero, villages_late, households_visited, persons_screened, temperature_checks, arrivals_risk_areas, arrivals_abroad, investigation_requests, close_contacts, secondary_contacts, cold_chain_workers, released_observation, home_observation, central_isolation, fever_referred, suspected, confirmed, asymptomatic, nucleic_acid_sampled, vaccinated, elderly_alone, disabled, pregnant, left_behind_children, orphans, hardship_households, tenants, assistance_granted, gatherings_postponed, staff_on_duty, volunteers, masks, thermometers, disinfectant_kg, updated_at)
  SELECT g.t, day, 2, left(g.t, 6), g.version, u.expected_children, g.n, g.nz, g.nl,
         ARRAY(SELECT c.code FROM rollcall.unit c
                WHERE c.rollup_parent = g.t AND c.level = 1
                  AND NOT EXISTS (SELECT 1 FROM rollcall.latest_report l
                                   WHERE l.unit_code = c.code AND l.period = day AND l.level = 1)
                ORDER BY c.code),
         g.z1, g.z2, g.z3, g.z4, u.expected_children, g.n, g.nz, g.nl,
       g.households_visited,
       g.persons_screened,
       g.temperature_checks,
       g.arrivals_risk_areas,
       g.arrivals_abroad,
       g.investigation_requests,
       g.close_contacts,
       g.secondary_contacts,
       g.cold_chain_workers,
       g.released_observation,
       g.home_observation,
       g.central_isolation,
       g.fever_referred,
       g.suspected,
       g.confirmed,
       g.asymptomatic,
       g.nucleic_acid_sampled,
       g.vaccinated,
       g.elderly_alone,
       g.disabled,
       g.pregnant,
       g.left_behind_children,
       g.orphans,
       g.hardship_households,
       g.tenants,
       g.assistance_granted,
       g.gatherings_postponed,
       g.staff_on_duty,
       g.volunteers,
       g.masks,
       g.thermometers,
       g.disinfectant_kg,
         now()
    FROM (SELECT left(l.unit_code, 9) AS t,
                 rollcall.period_start_us(day)
                 + sum(greatest(l.version - rollcall.period_start_us(day), 1))::bigint AS version,
                 count(*)::int AS n,
                 count(*) FILTER (WHERE l.kind = 2)::int AS nz,
                 count(*) FILTER (WHERE l.late)::int AS nl,
                 count(*) FILTER (WHERE l.zone_status = 1)::int AS z1,
                 count(*) FILTER (WHERE l.zone_status = 2)::int AS z2,
                 count(*) FILTER (WHERE l.zone_status = 3)::int AS z3,
                 count(*) FILTER (WHERE l.zone_status = 4)::int AS z4,
                 sum(l.households_visited)::bigint AS households_visited,
                 sum(l.persons_screened)::bigint AS persons_screened,
                 sum(l.temperature_checks)::bigint AS temperature_checks,
                 sum(l.arrivals_risk_areas)::bigint AS arrivals_risk_areas,
                 sum(l.arrivals_abroad)::bigint AS arrivals_abroad,
                 sum(l.investigation_requests)::bigint AS investigation_requests,
                 sum(l.close_contacts)::bigint AS close_contacts,
                 sum(l.secondary_contacts)::bigint AS secondary_contacts,
                 sum(l.cold_chain_workers)::bigint AS cold_chain_workers,
                 sum(l.released_observation)::bigint AS released_observation,
                 sum(l.home_observation)::bigint AS home_observation,
                 sum(l.central_isolation)::bigint AS central_isolation,
                 sum(l.fever_referred)::bigint AS fever_referred,
                 sum(l.suspected)::bigint AS suspected,
                 sum(l.confirmed)::bigint AS confirmed,
                 sum(l.asymptomatic)::bigint AS asymptomatic,
                 sum(l.nucleic_acid_sampled)::bigint AS nucleic_acid_sampled,
                 sum(l.vaccinated)::bigint AS vaccinated,
                 sum(l.elderly_alone)::bigint AS elderly_alone,
                 sum(l.disabled)::bigint AS disabled,
                 sum(l.pregnant)::bigint AS pregnant,
                 sum(l.left_behind_children)::bigint AS left_behind_children,
                 sum(l.orphans)::bigint AS orphans,
                 sum(l.hardship_households)::bigint AS hardship_households,
                 sum(l.tenants)::bigint AS tenants,
                 sum(l.assistance_granted)::bigint AS assistance_granted,
                 sum(l.gatherings_postponed)::bigint AS gatherings_postponed,
                 sum(l.staff_on_duty)::bigint AS staff_on_duty,
                 sum(l.volunteers)::bigint AS volunteers,
                 sum(l.masks)::bigint AS masks,
                 sum(l.thermometers)::bigint AS thermometers,
                 sum(l.disinfectant_kg)::bigint AS disinfectant_kg
            FROM rollcall.latest_report l
           WHERE l.period = day AND l.level = 1
           GROUP BY 1) g
    JOIN rollcall.unit u ON u.code = g.t;
  GET DIAGNOSTICS m = ROW_COUNT;
  n := n + m;
  UPDATE rollcall.aggregate a SET extra = e.extra
    FROM (SELECT left(unit_code, 9) AS t, rollcall.jsonb_sum_array(array_agg(extra)) AS extra
            FROM rollcall.latest_report
           WHERE period = day AND level = 1 AND extra <> '{}'::jsonb GROUP BY 1) e
   WHERE a.unit_code = e.t AND a.period = day;

  SELECT array_agg(x.code ORDER BY x.code), array_agg(day), array_agg(x.villages)
    INTO c, p, v
    FROM (SELECT y.code,
                 (SELECT count(*) FROM rollcall.unit w
                   WHERE w.level = 1 AND w.code LIKE y.code || '%')::int AS villages
            FROM (SELECT DISTINCT left(t.unit_code, 6) AS code
                    FROM rollcall.aggregate t WHERE t.period = day AND t.level = 2) y) x;
  IF c IS NOT NULL THEN
    PERFORM rollcall.lock_parents(3::smallint, c, p);
    n := n + rollcall.refresh_parents(3::smallint, c, p, v);
    PERFORM rollcall.refresh_filing(3::smallint, c, p);
  END IF;

  SELECT array_agg(x.code ORDER BY x.code), array_agg(day), array_agg(x.villages)
    INTO c, p, v
    FROM (SELECT y.code,
                 (SELECT count(*) FROM rollcall.unit w
                   WHERE w.level = 1 AND w.code LIKE y.code || '%')::int AS villages
            FROM (SELECT DISTINCT left(t.unit_code, 2) AS code
                    FROM rollcall.aggregate t WHERE t.period = day AND t.level = 3) y) x;
  IF c IS NOT NULL THEN
    PERFORM rollcall.lock_parents(5::smallint, c, p);
    n := n + rollcall.refresh_parents(5::smallint, c, p, v);
    PERFORM rollcall.refresh_filing(5::smallint, c, p);
  END IF;
  RETURN n;
END
$fn$;

-- v_unit_day: 001's columns first, in 001's order, then the rollup's.
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
       l.extra,
       CASE l.zone_status WHEN 1 THEN 'normal' WHEN 2 THEN 'prevention' WHEN 3 THEN 'control'
                          WHEN 4 THEN 'lockdown' END AS zone_status,
       NULL::int AS zone_normal,
       NULL::int AS zone_prevention,
       NULL::int AS zone_control,
       NULL::int AS zone_lockdown,
       NULL::int AS villages_expected,
       NULL::int AS villages_reported,
       NULL::int AS villages_zero,
       NULL::int AS villages_late,
       NULL::int AS filed_children,
       NULL::int AS filed_late_children,
       NULL::text[] AS unfiled_children,
       l.late,
       l.first_received_at,
       l.report_id,
       NULL::timestamptz AS updated_at
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
       a.extra,
       NULL::text,
       a.zone_normal,
       a.zone_prevention,
       a.zone_control,
       a.zone_lockdown,
       a.villages_expected,
       a.villages_reported,
       a.villages_zero,
       a.villages_late,
       a.filed_children,
       a.filed_late_children,
       a.unfiled_children,
       NULL::boolean,
       NULL::timestamptz,
       NULL::uuid,
       a.updated_at
  FROM rollcall.aggregate a;
COMMENT ON VIEW rollcall.v_unit_day IS
  'One row per unit per period at every level: a village''s own latest DAILY/ZERO report (completeness '
  'columns NULL; zone_status, late, first_received_at, report_id set) or a township/county/province''s '
  'live aggregate (kind NULL, with expected/reported/zero/late children, the missing children''s codes, '
  'zone counts, the village coverage villages_* of its subtree and, for counties and provinces, the '
  'filing completeness filed_children/filed_late_children/unfiled_children). level is text: village, '
  'township, county, province. Indicators are named as in rollcall.proto; extra holds a province''s '
  'own indicators (zero totals omitted).';
