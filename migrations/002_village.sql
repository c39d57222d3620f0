-- 002: the village intake's unit tokens.  Only SHA-256 hashes (hex) of the
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
