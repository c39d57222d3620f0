-- 009_township_deltas: a township's live aggregate follows its villages'
-- latest reports by the difference each write makes, instead of being
-- recomputed from all its villages after every batch.
--
-- Every statement that writes rollcall.latest_report (the rollup's upsert,
-- an operator's replay, a repair that deletes rows) hands its old and new
-- rows to rollcall.latest_report_deltas through transition tables: the
-- rows the statement actually replaced, as they were, and what replaced
-- them — exact whatever else runs at the same time, because PostgreSQL
-- fills them from the row versions the statement itself locked.  The
-- township row then changes by (new - old), summed per township, in one
-- UPDATE; two writers of one township serialize on its row and each adds
-- its own difference.  The recompute (rollcall.refresh_level,
-- rollcall.rebuild_day) stays as the repair and the proof: the rollup runs
-- it for a township whose row was lost or whose registry changed, and the
-- tests compare the two after every run.

-- sum() of bigint is numeric, a tenth of the speed; the differences of a
-- batch stay far inside bigint, and int8pl refuses an overflow.
CREATE AGGREGATE rollcall.sum8(bigint) (SFUNC = int8pl, STYPE = bigint, COMBINEFUNC = int8pl,
                                        PARALLEL = SAFE);

-- A map of numbers with every value negated (what an extra map takes away
-- when the report that carried it is replaced).
CREATE FUNCTION rollcall.jsonb_negate(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(jsonb_object_agg(e.key, -(e.value::numeric)), '{}'::jsonb) FROM jsonb_each_text(j) e
$$;

-- The elements of every array, in one array (array_agg of arrays of
-- different lengths is refused; concatenation is not).
CREATE AGGREGATE rollcall.jsonb_concat_arrays(jsonb[]) (SFUNC = array_cat, STYPE = jsonb[]);

-- After each statement on rollcall.latest_report: adds (new - old) of its
-- village rows (level 1, DAILY or ZERO) to their townships' aggregates —
-- the counts, the zone counts, every indicator, the extra sums, the version
-- term (period start + the sum over villages of version - period start, as
-- refresh_townships has it) and the missing villages.  A township without a
-- row gets one first, from the registry, as if none of its villages had
-- reported; a statement that only deletes changes rows, never creates them
-- (a repair deleting a day may delete the aggregates first).
--
-- The statements run here, with EXECUTE, because only the trigger function
-- itself can see the transition tables (a function it called could not).
-- Each is one chain of groupings with no join: the planner cannot know how
-- many rows a statement changed, and a join it took for small would be
-- repeated per township.  Inserts and deletes hold each village once; an
-- update may hold a village twice (old and new), so only there is it summed
-- per village before per township, to tell a replaced report from one that
-- came or went.
CREATE FUNCTION rollcall.latest_report_deltas() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  src text;
  villages text;
BEGIN
  src := CASE TG_OP
           WHEN 'INSERT' THEN 'SELECT n.*, 1 AS sign FROM new_rows n'
           WHEN 'UPDATE' THEN 'SELECT n.*, 1 AS sign FROM new_rows n '
                              'UNION ALL SELECT o.*, -1 FROM old_rows o'
           ELSE 'SELECT o.*, -1 AS sign FROM old_rows o' END;
  IF TG_OP = 'UPDATE' THEN
    villages := $q$
      SELECT unit_code, period, sum(sign) AS net,
             rollcall.sum8(sign * greatest(version - rollcall.period_start_us(period), 1)) AS dversion,
             sum(sign) FILTER (WHERE kind = 2) AS dz,
             sum(sign) FILTER (WHERE late) AS dl,
             sum(sign) FILTER (WHERE zone_status = 1) AS z1,
             sum(sign) FILTER (WHERE zone_status = 2) AS z2,
             sum(sign) FILTER (WHERE zone_status = 3) AS z3,
             sum(sign) FILTER (WHERE zone_status = 4) AS z4,
             @indicators(rollcall.sum8(sign * {}) AS {}),
             array_agg(CASE WHEN sign > 0 THEN extra ELSE rollcall.jsonb_negate(extra) END)
               FILTER (WHERE extra <> '{}'::jsonb) AS extras
        FROM c GROUP BY 1, 2 $q$;
  ELSE
    villages := $q$
      SELECT unit_code, period, sign AS net,
             sign * greatest(version - rollcall.period_start_us(period), 1) AS dversion,
             CASE WHEN kind = 2 THEN sign END AS dz,
             CASE WHEN late THEN sign END AS dl,
             CASE WHEN zone_status = 1 THEN sign END AS z1,
             CASE WHEN zone_status = 2 THEN sign END AS z2,
             CASE WHEN zone_status = 3 THEN sign END AS z3,
             CASE WHEN zone_status = 4 THEN sign END AS z4,
             @indicators(sign * {} AS {}),
             CASE WHEN extra <> '{}'::jsonb
                  THEN ARRAY[CASE WHEN sign > 0 THEN extra ELSE rollcall.jsonb_negate(extra) END] END
               AS extras
        FROM c $q$;
  END IF;

  IF TG_OP <> 'DELETE' THEN
    -- ON CONFLICT DO NOTHING waits for a row another writer is creating and
    -- then leaves it: the UPDATE below adds to whichever row exists.
    EXECUTE format($q$
      INSERT INTO rollcall.aggregate AS a
            (unit_code, period, level, rollup_parent, version, expected_children,
             villages_expected, missing_children, updated_at)
      SELECT d.code, d.period, 2, left(d.code, 6), 0, u.expected_children, u.expected_children,
             ARRAY(SELECT m.code FROM rollcall.unit m
                    WHERE m.rollup_parent = d.code AND m.level = 1 ORDER BY m.code),
             now()
        FROM (SELECT DISTINCT left(n.unit_code, 9) AS code, n.period
                FROM new_rows n WHERE n.level = 1 AND n.kind IN (1, 2)) d
        JOIN rollcall.unit u ON u.code = d.code
       WHERE NOT EXISTS (SELECT 1 FROM rollcall.aggregate e
                          WHERE e.unit_code = d.code AND e.period = d.period)
       ORDER BY 1, 2
      ON CONFLICT (unit_code, period) DO NOTHING $q$);
  END IF;

  EXECUTE format($q$
    WITH c AS (SELECT * FROM (%s) r WHERE r.level = 1 AND r.kind IN (1, 2)),
      v AS (%s),
      d AS (SELECT left(unit_code, 9) AS t, period,
                   rollcall.sum8(dversion) AS dversion,
                   sum(net)::int AS dn,
                   coalesce(sum(dz), 0)::int AS dz,
                   coalesce(sum(dl), 0)::int AS dl,
                   coalesce(sum(z1), 0)::int AS z1,
                   coalesce(sum(z2), 0)::int AS z2,
                   coalesce(sum(z3), 0)::int AS z3,
                   coalesce(sum(z4), 0)::int AS z4,
                   @indicators(rollcall.sum8({}) AS {}),
                   array_agg(unit_code ORDER BY unit_code) FILTER (WHERE net > 0) AS came,
                   array_agg(unit_code ORDER BY unit_code) FILTER (WHERE net < 0) AS gone,
                   nullif(rollcall.jsonb_sum_array(rollcall.jsonb_concat_arrays(extras)), '{}'::jsonb)
                     AS extra
              FROM v GROUP BY 1, 2)
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
            OR d.extra IS NOT NULL OR d.came IS NOT NULL OR d.gone IS NOT NULL) $q$, src, villages);
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
