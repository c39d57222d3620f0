-- 009_township_deltas: a township's live aggregate follows its villages'
-- latest reports by the difference each write makes, instead of being
-- recomputed from all its villages after every batch.
--
-- Every statement that writes rollcall.latest_report (the rollup's upsert,
-- an operator's replay, a repair that deletes rows) hands its old and new
-- rows to rollcall.apply_township_deltas through transition tables: the
-- rows the statement actually replaced, as they were, and what replaced
-- them — exact whatever else runs at the same time, because PostgreSQL
-- fills them from the row versions the statement itself locked.  The
-- township row then changes by (new - old), summed per township, in one
-- UPDATE; two writers of one township serialize on its row and each adds
-- its own difference.  The recompute (rollcall.refresh_level,
-- rollcall.rebuild_day) stays as the repair and the proof: the rollup runs
-- it for a township whose row was lost or whose registry changed, and the
-- tests compare the two after every run.

-- Adds (added - removed) of village rows (level 1, DAILY or ZERO) to their
-- townships' aggregates: the counts, the zone counts, every indicator, the
-- extra sums, the version term (period start + the sum over villages of
-- version - period start, as refresh_townships has it) and the missing
-- villages.  A township without a row gets one first, from the registry,
-- as if none of its villages had reported; with removed rows only, rows
-- are changed, never created (a repair deleting a day's rows may delete the
-- aggregates first).  Returns the number of townships changed.
CREATE FUNCTION rollcall.apply_township_deltas(added rollcall.latest_report[],
                                               removed rollcall.latest_report[])
RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
  n bigint;
BEGIN
  IF cardinality(added) > 0 THEN
    -- ON CONFLICT DO NOTHING waits for a row another writer is creating and
    -- then leaves it: the UPDATE below adds to whichever row exists.
    INSERT INTO rollcall.aggregate AS a
          (unit_code, period, level, rollup_parent, version, expected_children,
           villages_expected, missing_children, updated_at)
    SELECT d.code, d.period, 2, left(d.code, 6), 0, u.expected_children, u.expected_children,
           ARRAY(SELECT m.code FROM rollcall.unit m
                  WHERE m.rollup_parent = d.code AND m.level = 1 ORDER BY m.code),
           now()
      FROM (SELECT DISTINCT left(r.unit_code, 9) AS code, r.period
              FROM unnest(added) r WHERE r.level = 1 AND r.kind IN (1, 2)) d
      JOIN rollcall.unit u ON u.code = d.code
     WHERE NOT EXISTS (SELECT 1 FROM rollcall.aggregate e
                        WHERE e.unit_code = d.code AND e.period = d.period)
     ORDER BY 1, 2
    ON CONFLICT (unit_code, period) DO NOTHING;
  END IF;

  WITH c AS (
      SELECT r.*, 1 AS sign FROM unnest(added) r WHERE r.level = 1 AND r.kind IN (1, 2)
      UNION ALL
      SELECT r.*, -1 FROM unnest(removed) r WHERE r.level = 1 AND r.kind IN (1, 2)),
    -- per village: +1 now present, -1 now absent, 0 replaced
    v AS (SELECT left(unit_code, 9) AS t, period,
                 array_agg(unit_code ORDER BY unit_code) FILTER (WHERE net > 0) AS came,
                 array_agg(unit_code ORDER BY unit_code) FILTER (WHERE net < 0) AS gone
            FROM (SELECT unit_code, period, sum(sign) AS net FROM c GROUP BY 1, 2) p
           WHERE net <> 0 GROUP BY 1, 2),
    x AS (SELECT t, period, jsonb_object_agg(key, s) AS extra
            FROM (SELECT left(c.unit_code, 9) AS t, c.period, e.key,
                         sum(c.sign * e.value::numeric)::bigint AS s
                    FROM c CROSS JOIN LATERAL jsonb_each_text(c.extra) e
                   WHERE c.extra <> '{}'::jsonb
                   GROUP BY 1, 2, 3) y
           WHERE s <> 0 GROUP BY 1, 2),
    d AS (SELECT g.*, v.came, v.gone, x.extra
            FROM (SELECT left(c.unit_code, 9) AS t, c.period,
                         sum(c.sign * greatest(c.version - rollcall.period_start_us(c.period), 1))::bigint
                           AS dversion,
                         sum(c.sign)::int AS dn,
                         coalesce(sum(c.sign) FILTER (WHERE c.kind = 2), 0)::int AS dz,
                         coalesce(sum(c.sign) FILTER (WHERE c.late), 0)::int AS dl,
                         coalesce(sum(c.sign) FILTER (WHERE c.zone_status = 1), 0)::int AS z1,
                         coalesce(sum(c.sign) FILTER (WHERE c.zone_status = 2), 0)::int AS z2,
                         coalesce(sum(c.sign) FILTER (WHERE c.zone_status = 3), 0)::int AS z3,
                         coalesce(sum(c.sign) FILTER (WHERE c.zone_status = 4), 0)::int AS z4,
                         @indicators(sum(c.sign * c.{})::bigint AS {})
                    FROM c GROUP BY 1, 2) g
            LEFT JOIN v ON v.t = g.t AND v.period = g.period
            LEFT JOIN x ON x.t = g.t AND x.period = g.period)
  UPDATE rollcall.aggregate a SET
    version = CASE WHEN a.reported_children + d.dn <= 0 THEN 0
                   ELSE CASE WHEN a.reported_children = 0 THEN rollcall.period_start_us(a.period)
                             ELSE a.version END + d.dversion END,
    reported_children = a.reported_children + d.dn,
    villages_reported = a.villages_reported + d.dn,
    zero_children = a.zero_children + d.dz,
    villages_zero = a.villages_zero + d.dz,
    late_children = a.late_children + d.dl,
    villages_late = a.villages_late + d.dl,
    zone_normal = a.zone_normal + d.z1,
    zone_prevention = a.zone_prevention + d.z2,
    zone_control = a.zone_control + d.z3,
    zone_lockdown = a.zone_lockdown + d.z4,
    @indicators({} = a.{} + d.{}),
    missing_children = CASE WHEN d.came IS NULL AND d.gone IS NULL THEN a.missing_children
      ELSE ARRAY(SELECT k FROM unnest(a.missing_children) k WHERE k <> ALL (coalesce(d.came, '{}'))
                 UNION
                 SELECT m.code FROM rollcall.unit m
                  WHERE m.code = ANY (d.gone) AND m.rollup_parent = a.unit_code AND m.level = 1
                 ORDER BY 1) END,
    extra = CASE WHEN d.extra IS NULL THEN a.extra
                 ELSE rollcall.jsonb_sum_array(ARRAY[a.extra, d.extra]) END,
    updated_at = now()
    FROM d
   WHERE a.unit_code = d.t AND a.period = d.period AND a.level = 2
     -- a revision that changes nothing a township counts (a receive time
     -- earlier but on the same side of the deadline) leaves its row alone
     AND ((d.dversion, d.dn, d.dz, d.dl, d.z1, d.z2, d.z3, d.z4, @indicators(d.{}))
            IS DISTINCT FROM (0::bigint, 0, 0, 0, 0, 0, 0, 0, @indicators(0::bigint))
          OR d.extra IS NOT NULL OR d.came IS NOT NULL OR d.gone IS NOT NULL);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$fn$;

CREATE FUNCTION rollcall.latest_report_deltas() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM rollcall.apply_township_deltas(ARRAY(SELECT n::rollcall.latest_report FROM new_rows n), '{}');
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM rollcall.apply_township_deltas(ARRAY(SELECT n::rollcall.latest_report FROM new_rows n),
                                           ARRAY(SELECT o::rollcall.latest_report FROM old_rows o));
  ELSE
    PERFORM rollcall.apply_township_deltas('{}', ARRAY(SELECT o::rollcall.latest_report FROM old_rows o));
  END IF;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER latest_report_insert_deltas AFTER INSERT ON rollcall.latest_report
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION rollcall.latest_report_deltas();
CREATE TRIGGER latest_report_update_deltas AFTER UPDATE ON rollcall.latest_report
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION rollcall.latest_report_deltas();
CREATE TRIGGER latest_report_delete_deltas AFTER DELETE ON rollcall.latest_report
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION rollcall.latest_report_deltas();
