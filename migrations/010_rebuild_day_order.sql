-- 010_rebuild_day_order: rollcall.rebuild_day handed refresh_parents the
-- counties' (and provinces') codes sorted but their village counts in
-- whatever order the grouping produced them, so with more than one county
-- a recomputed day gave each county another's villages_expected.  The
-- arrays are now built in one order.  Found by scripts/drift.sh, which
-- compares the live aggregates of a national day with rebuild_day's.
CREATE OR REPLACE FUNCTION rollcall.rebuild_day(day date) RETURNS bigint
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

  SELECT array_agg(x.code ORDER BY x.code), array_agg(day), array_agg(x.villages ORDER BY x.code)
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

  SELECT array_agg(x.code ORDER BY x.code), array_agg(day), array_agg(x.villages ORDER BY x.code)
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
