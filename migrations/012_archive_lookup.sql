-- 011_archive_lookup: the intake asks the archive whether a report_id is
-- already taken.  Its idempotency window (a bounded memory) forgets; the
-- archive does not: a report_id reused after the window with other content
-- must be refused (409) at the door, not accepted and then ignored by the
-- rollup as a second delivery of a known id.
--
-- rollcall_intake may not read reports (007).  This function answers for
-- the ids it is given, and only them, through the primary key: the
-- version, and the payload when the archived report is a village's (the
-- only level the intake takes, so the only content it ever compares);
-- an id taken by a report of another level comes back without content.
CREATE FUNCTION rollcall.intake_archived(ids uuid[])
RETURNS TABLE (report_id uuid, version bigint, payload bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT a.report_id, a.version, CASE WHEN a.level = 1 THEN a.payload END
    FROM rollcall.report_archive a
   WHERE a.report_id = ANY (ids)
$$;
REVOKE ALL ON FUNCTION rollcall.intake_archived(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rollcall.intake_archived(uuid[]) TO rollcall_intake;

-- The function runs as its owner, the migration role, and the archive's
-- row-level security is forced (007): a migration role that is not a
-- superuser needs a policy of its own to read it here.  It owns the table
-- already, so this grants nothing it could not take.
DO $$
BEGIN
  IF NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('CREATE POLICY owner_lookup ON rollcall.report_archive FOR SELECT TO %I USING (true)',
                   current_user);
  END IF;
END $$;
