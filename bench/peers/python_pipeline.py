#!/usr/bin/env python3
# The pipeline a user would write instead of Rollcall, measured beside it by
# bench/national-day.sh --direct (and bench/peers/county.sh): a confluent-kafka
# consumer reads reports.village (protobuf, proto/rollcall.proto compiled with
# protoc into var/peer/ on first use), keeps the latest DAILY/ZERO report of
# every (village, period) with a batched psycopg2 upsert into a scratch schema
# of its own (`peer` by default: created at start, dropped at the end; it only
# reads rollcall.unit and rollcall.level_policy, never writes rollcall.*), and
# when the day is in computes the township, county and province rows with one
# GROUP BY per level, the same arithmetic as rollcall.rebuild_day: sums of the
# 32 indicators and of the extra ones, reported/zero/late counts, zone counts,
# the missing villages, and the version (period start + the sum over the
# children of max(version - period start, 1)).
#
# It is a peer, not an oracle: no archive of revisions, no live aggregates
# while the day comes in, no dead letters, no filing.  What it does do is what
# a careful script does: it rejects what cannot be counted (undecodable,
# wrong level, unknown village, negative values, a ZERO report with numbers),
# dedupes a batch before upserting it (PostgreSQL refuses to update one row
# twice in one statement) and lets the larger (version, report_id) win.
#
# It stops after --expect messages, or when nothing arrived for --idle
# seconds, and prints on stdout a check line (its province totals against a
# SUM over its own latest table: must agree, else exit 1) and one summary line
# (key=value, elapsed_s = first message consumed -> rollups committed, an idle
# wait at the end not counted).  With --compare-rollcall it also says whether
# its province rows agree with rollcall.aggregate for the same day.
#
#   /usr/bin/python3 bench/peers/python_pipeline.py --brokers B --dsn DSN
#       [--expect N] [--idle S] [--batch N] [--ready-file F] [--compare-rollcall]
#
# Needs Debian's python3-confluent-kafka, python3-psycopg2, python3-protobuf
# and protobuf-compiler (deploy/install-deps.sh), hence /usr/bin/python3.
import argparse
import json
import os
import re
import subprocess
import sys
import time

try:
    import confluent_kafka
    import psycopg2
    import psycopg2.extras
    from google.protobuf.message import DecodeError
except ImportError as e:
    sys.exit("python_pipeline: %s: needs python3-confluent-kafka, python3-psycopg2 and "
             "python3-protobuf (deploy/install-deps.sh), run with /usr/bin/python3" % e)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PERIOD_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
KIND_DAILY, KIND_ZERO, KIND_URGENT = 1, 2, 3
LEVEL_VILLAGE = 1


def say(msg):
    print("python-peer: " + msg, file=sys.stderr, flush=True)


def load_schema(proto, gen_dir):
    """Compiles the .proto with protoc when the generated module is missing or
    older, and returns the module."""
    out = os.path.join(gen_dir, "rollcall_pb2.py")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(proto):
        os.makedirs(gen_dir, exist_ok=True)
        subprocess.run(["protoc", "-I", os.path.dirname(proto), "--python_out", gen_dir, proto],
                       check=True)
    sys.path.insert(0, gen_dir)
    import rollcall_pb2
    return rollcall_pb2


def parse_args():
    p = argparse.ArgumentParser(description="The plain Python pipeline Rollcall is measured against.")
    p.add_argument("--brokers", default=os.environ.get("ROLLCALL_KAFKA_BROKERS"))
    p.add_argument("--dsn", default=os.environ.get("ROLLCALL_PG_DSN"))
    p.add_argument("--topic", default="reports.village")
    p.add_argument("--group", default="rollcall-python-peer-%d" % os.getpid())
    p.add_argument("--schema", default="peer", help="scratch schema, dropped and created (default peer)")
    p.add_argument("--expect", type=int, default=0, help="stop after this many messages")
    p.add_argument("--idle", type=float, default=10.0,
                   help="stop when nothing arrived for this many seconds after the first message")
    p.add_argument("--wait-first", type=float, default=300.0,
                   help="give up when no message arrived after this many seconds")
    p.add_argument("--batch", type=int, default=5000, help="messages per consume and per upsert")
    p.add_argument("--deadline", default=None,
                   help="village deadline HH:MM (default rollcall.level_policy, else 10:00)")
    p.add_argument("--ready-file", help="written once the consumer has its partitions")
    p.add_argument("--proto", default=os.path.join(ROOT, "proto", "rollcall.proto"))
    p.add_argument("--gen-dir", default=os.path.join(ROOT, "var", "peer"))
    p.add_argument("--compare-rollcall", action="store_true",
                   help="also compare the province rows with rollcall.aggregate (informative)")
    p.add_argument("--keep", action="store_true", help="leave the scratch schema in place")
    a = p.parse_args()
    if not a.brokers or not a.dsn:
        p.error("--brokers and --dsn (or ROLLCALL_KAFKA_BROKERS and ROLLCALL_PG_DSN) are needed")
    if not re.match(r"^[a-z_][a-z0-9_]*$", a.schema):
        p.error("--schema: a plain lower-case identifier")
    return a


class Peer:
    def __init__(self, args, pb):
        self.a = args
        self.pb = pb
        self.s = args.schema
        self.ind = [f.name for f in pb.Indicators.DESCRIPTOR.fields]
        self.cols = ["unit_code", "period", "kind", "version", "report_id", "first_received_at",
                     "zone_status"] + self.ind + ["extra"]
        self.db = psycopg2.connect(args.dsn)
        self.counts = dict(messages=0, decoded=0, invalid=0, urgent=0, unknown=0, upserted=0)
        self.upsert_sql = self._upsert_sql()

    # ---- schema ----

    def create(self):
        ind = ",\n".join("  %s bigint NOT NULL" % c for c in self.ind)
        with self.db, self.db.cursor() as cur:
            cur.execute("SET client_min_messages = warning")
            cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % self.s)
            cur.execute("CREATE SCHEMA %s" % self.s)
            cur.execute("""CREATE TABLE %s.latest (
  unit_code text COLLATE "C" NOT NULL,
  period date NOT NULL,
  kind smallint NOT NULL,
  version bigint NOT NULL,
  report_id uuid NOT NULL,
  first_received_at bigint NOT NULL,
  zone_status smallint NOT NULL,
%s,
  extra jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (period, unit_code))""" % (self.s, ind))
            if self.a.deadline:
                hh, mm = self.a.deadline.split(":")
                self.deadline_us = (int(hh) * 3600 + int(mm) * 60) * 1000000
            else:
                cur.execute("SELECT extract(epoch FROM deadline)::bigint * 1000000 "
                            "FROM rollcall.level_policy WHERE level = 1")
                row = cur.fetchone()
                self.deadline_us = row[0] if row else 10 * 3600 * 1000000

    def drop(self):
        with self.db, self.db.cursor() as cur:
            cur.execute("SET client_min_messages = warning")
            cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % self.s)

    # ---- consume and upsert ----

    def _upsert_sql(self):
        # Latest wins: the larger (version, report_id); the earliest receive
        # time is kept whichever revision wins (lateness is the first report's).
        newer = "(excluded.version, excluded.report_id) > (l.version, l.report_id)"
        sets = ["first_received_at = least(l.first_received_at, excluded.first_received_at)"]
        sets += ["%s = CASE WHEN %s THEN excluded.%s ELSE l.%s END" % (c, newer, c, c)
                 for c in self.cols if c not in ("unit_code", "period", "first_received_at")]
        return ("INSERT INTO %s.latest AS l (%s) SELECT v.* FROM (VALUES %%s) AS v(%s) "
                "WHERE EXISTS (SELECT 1 FROM rollcall.unit u WHERE u.code = v.unit_code AND u.level = 1) "
                "ON CONFLICT (period, unit_code) DO UPDATE SET %s RETURNING true"
                % (self.s, ", ".join(self.cols), ", ".join(self.cols), ", ".join(sets)))

    def row(self, value):
        """A stored row for one message, or None when it is not counted."""
        c = self.counts
        try:
            r = self.pb.Report.FromString(value)
        except DecodeError:
            c["invalid"] += 1
            return None
        c["decoded"] += 1
        if r.kind == KIND_URGENT:
            c["urgent"] += 1          # the fast path; not part of the daily totals
            return None
        code = r.unit_code
        if (r.kind not in (KIND_DAILY, KIND_ZERO) or r.level != LEVEL_VILLAGE or len(code) != 12
                or not code.isdigit() or not PERIOD_RE.match(r.period) or not r.report_id):
            c["invalid"] += 1
            return None
        i = r.indicators
        vals = [getattr(i, n) for n in self.ind]
        if min(vals) < 0 or any(v < 0 for v in r.extra.values()) or \
                (r.kind == KIND_ZERO and (any(vals) or any(r.extra.values()))):
            c["invalid"] += 1
            return None
        extra = json.dumps({k: v for k, v in r.extra.items() if v}) if r.extra else "{}"
        return [code, r.period, r.kind, r.version, r.report_id, r.received_at, r.zone_status] \
            + vals + [extra]

    def apply(self, msgs):
        batch = {}
        for m in msgs:
            row = self.row(m.value())
            if row is None:
                continue
            key = (row[1], row[0])
            old = batch.get(key)
            if old is None:
                batch[key] = row
            else:
                first = min(old[5], row[5])
                if (row[3], row[4]) > (old[3], old[4]):
                    old = batch[key] = row
                old[5] = first
        if not batch:
            return
        template = "(%s, %s::date, %s, %s, %s::uuid, %s, %s, " + ", ".join(["%s"] * len(self.ind)) \
            + ", %s::jsonb)"
        with self.db, self.db.cursor() as cur:
            # psycopg2's default page: 100 rows a statement (larger pages were
            # slower here: the statement's parse and plan grow faster than its rows).
            done = len(psycopg2.extras.execute_values(cur, self.upsert_sql, list(batch.values()),
                                                      template=template, page_size=100, fetch=True))
            self.counts["upserted"] += done
            self.counts["unknown"] += len(batch) - done

    def consume(self, ready):
        a = self.a
        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": a.brokers,
            "group.id": a.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        })

        def on_assign(c, parts):
            if a.ready_file and parts:
                with open(a.ready_file, "w") as f:
                    f.write("%d partitions\n" % len(parts))
            say("consuming %s (%d partitions), group %s" % (a.topic, len(parts), a.group))

        consumer.subscribe([a.topic], on_assign=on_assign)
        t_start = time.monotonic()
        t_first = t_last = None
        why = "expected messages consumed"
        try:
            while not a.expect or self.counts["messages"] < a.expect:
                msgs = consumer.consume(num_messages=a.batch, timeout=0.2)
                now = time.monotonic()
                good = []
                for m in msgs:
                    if m.error():
                        say("consumer: %s" % m.error())
                    else:
                        good.append(m)
                if not good:
                    if t_first is None and now - t_start > a.wait_first:
                        why = "nothing arrived in %.0f s" % a.wait_first
                        break
                    if t_last is not None and now - t_last > a.idle:
                        why = "idle for %.0f s" % a.idle
                        break
                    continue
                if t_first is None:
                    t_first = now
                self.counts["messages"] += len(good)
                self.apply(good)
                # Offsets after the rows are committed: a restart re-reads,
                # and latest-wins makes the re-read harmless.
                consumer.commit(asynchronous=True)
                t_last = time.monotonic()
        finally:
            consumer.close()
        return t_first, t_last, why

    # ---- rollups ----

    def rollups(self):
        s, ind = self.s, self.ind
        sums = ", ".join("sum(x.%s)::bigint AS %s" % (c, c) for c in ind)
        with self.db, self.db.cursor() as cur:
            cur.execute("SET LOCAL work_mem = '256MB'")
            cur.execute("""CREATE TABLE {s}.day AS
SELECT period,
       (extract(epoch FROM period::timestamp AT TIME ZONE 'Asia/Shanghai') * 1000000)::bigint AS start
  FROM (SELECT DISTINCT period FROM {s}.latest) d""".format(s=s))
            # Townships from their villages' latest reports.
            cur.execute("""CREATE TABLE {s}.township AS
WITH g AS (
  SELECT u.rollup_parent AS code, x.period,
         d.start + sum(greatest(x.version - d.start, 1))::bigint AS version,
         count(*)::int AS reported,
         count(*) FILTER (WHERE x.kind = 2)::int AS zero,
         count(*) FILTER (WHERE x.first_received_at > d.start + {dl})::int AS late,
         count(*) FILTER (WHERE x.zone_status = 1)::int AS zone_normal,
         count(*) FILTER (WHERE x.zone_status = 2)::int AS zone_prevention,
         count(*) FILTER (WHERE x.zone_status = 3)::int AS zone_control,
         count(*) FILTER (WHERE x.zone_status = 4)::int AS zone_lockdown,
         {sums}
    FROM {s}.latest x JOIN rollcall.unit u ON u.code = x.unit_code JOIN {s}.day d USING (period)
   GROUP BY 1, 2, d.start),
e AS (
  SELECT code, period, jsonb_object_agg(k, v) AS extra
    FROM (SELECT u.rollup_parent AS code, x.period, e.key AS k, sum(e.value::bigint) AS v
            FROM {s}.latest x JOIN rollcall.unit u ON u.code = x.unit_code,
                 jsonb_each_text(x.extra) e
           WHERE x.extra <> '{{}}' GROUP BY 1, 2, 3) y
   WHERE v <> 0 GROUP BY 1, 2),
m AS (
  SELECT v.rollup_parent AS code, d.period, array_agg(v.code ORDER BY v.code) AS missing
    FROM rollcall.unit v CROSS JOIN {s}.day d
   WHERE v.level = 1
     AND NOT EXISTS (SELECT 1 FROM {s}.latest x WHERE x.period = d.period AND x.unit_code = v.code)
   GROUP BY 1, 2)
SELECT g.*, t.expected_children AS expected, g.reported AS villages_reported,
       t.expected_children AS villages_expected,
       coalesce(m.missing, '{{}}') AS missing, coalesce(e.extra, '{{}}') AS extra
  FROM g JOIN rollcall.unit t ON t.code = g.code
  LEFT JOIN m ON m.code = g.code AND m.period = g.period
  LEFT JOIN e ON e.code = g.code AND e.period = g.period""".format(
                s=s, sums=sums, dl=self.deadline_us))
            # Counties from townships, provinces from counties.
            self._level(cur, "township", "county")
            self._level(cur, "county", "province")
            cur.execute("SELECT (SELECT count(*) FROM {s}.township), (SELECT count(*) FROM {s}.county), "
                        "(SELECT count(*) FROM {s}.province)".format(s=s))
            self.counts["townships"], self.counts["counties"], self.counts["provinces"] = cur.fetchone()

    def _level(self, cur, child, parent):
        s = self.s
        sums = ", ".join("sum(x.%s)::bigint AS %s" % (c, c)
                         for c in ["zone_normal", "zone_prevention", "zone_control", "zone_lockdown"] + self.ind)
        cur.execute("""CREATE TABLE {s}.{p} AS
WITH g AS (
  SELECT u.rollup_parent AS code, x.period,
         d.start + sum(x.version - d.start)::bigint AS version,
         count(*)::int AS reported,
         sum(x.zero)::int AS zero, sum(x.late)::int AS late,
         sum(x.villages_reported)::int AS villages_reported,
         sum(x.villages_expected)::int AS villages_expected,
         {sums}
    FROM {s}.{c} x JOIN rollcall.unit u ON u.code = x.code JOIN {s}.day d USING (period)
   GROUP BY 1, 2, d.start),
e AS (
  SELECT code, period, jsonb_object_agg(k, v) AS extra
    FROM (SELECT u.rollup_parent AS code, x.period, e.key AS k, sum(e.value::bigint) AS v
            FROM {s}.{c} x JOIN rollcall.unit u ON u.code = x.code, jsonb_each_text(x.extra) e
           WHERE x.extra <> '{{}}' GROUP BY 1, 2, 3) y
   WHERE v <> 0 GROUP BY 1, 2)
SELECT g.*, t.expected_children AS expected, coalesce(e.extra, '{{}}') AS extra
  FROM g JOIN rollcall.unit t ON t.code = g.code
  LEFT JOIN e ON e.code = g.code AND e.period = g.period""".format(
            s=s, p=parent, c=child, sums=sums))

    # ---- checks ----

    def check(self):
        """Its province totals against a SUM over its own latest table.
        Returns (ok, line)."""
        s = self.s
        cols = self.ind + ["villages_reported", "zero", "late"]
        latest = ", ".join(["sum(%s)::bigint" % c for c in self.ind]
                           + ["count(*)", "count(*) FILTER (WHERE kind = 2)",
                              "count(*) FILTER (WHERE first_received_at > d.start + %d)" % self.deadline_us])
        prov = ", ".join("sum(%s)::bigint" % c for c in cols)
        with self.db, self.db.cursor() as cur:
            cur.execute("SELECT %s FROM %s.latest JOIN %s.day d USING (period)" % (latest, s, s))
            want = cur.fetchone()
            cur.execute("SELECT %s FROM %s.province" % (prov, s))
            got = cur.fetchone()
            cur.execute("SELECT count(*) FROM %s.latest" % s)
            n = cur.fetchone()[0]
        bad = [c for c, w, g in zip(cols, want, got) if (w or 0) != (g or 0)]
        if bad:
            return False, "python peer: check FAILED: province totals differ from the sum over its " \
                "%d latest village reports in %s" % (n, ", ".join(bad))
        return True, "python peer: check passed: province totals equal the sum over its %d latest " \
            "village reports (%d indicators, reported, zero, late)" % (n, len(self.ind))

    def compare_rollcall(self):
        """Its province rows against rollcall.aggregate's (informative: the
        peer is not the oracle, and Rollcall may hold other days' or units'
        reports)."""
        s = self.s
        cols = ["version", "villages_reported", "zero", "late", "zone_normal", "zone_prevention",
                "zone_control", "zone_lockdown"] + self.ind + ["extra"]
        rc = {"zero": "villages_zero", "late": "villages_late"}
        diff = " OR ".join("p.%s IS DISTINCT FROM a.%s" % (c, rc.get(c, c)) for c in cols)
        with self.db, self.db.cursor() as cur:
            cur.execute("""SELECT count(*), count(a.unit_code), count(*) FILTER (WHERE {d})
                             FROM {s}.province p
                             LEFT JOIN rollcall.aggregate a
                                    ON a.unit_code = p.code AND a.period = p.period AND a.level = 5""".format(
                d=diff, s=s))
            n, found, differ = cur.fetchone()
        if found < n:
            return "python peer: %d of %d provinces have no rollcall.aggregate row to compare" % (n - found, n)
        if differ:
            return "python peer: %d of %d provinces differ from rollcall.aggregate" % (differ, n)
        return "python peer: its %d province rows agree with rollcall.aggregate (version, counts, " \
            "indicators, extra)" % n


def main():
    a = parse_args()
    pb = load_schema(a.proto, a.gen_dir)
    peer = Peer(a, pb)
    peer.create()
    t_first, t_last, why = peer.consume(a.ready_file)
    c = peer.counts
    if t_first is None:
        print("python peer: no message consumed (%s)" % why)
        peer.drop()
        return 1
    say("stopped: %s; %d messages (%d invalid, %d urgent, %d unknown units), rollups" %
        (why, c["messages"], c["invalid"], c["urgent"], c["unknown"]))
    t_roll = time.monotonic()
    peer.rollups()
    t_done = time.monotonic()
    ok, line = peer.check()
    print(line, flush=True)
    if a.compare_rollcall:
        print(peer.compare_rollcall(), flush=True)
    consume_s = t_last - t_first
    rollup_s = t_done - t_roll
    if a.expect and c["messages"] < a.expect:
        say("expected %d messages, consumed %d" % (a.expect, c["messages"]))
        ok = False
    print("peer=python messages=%d decoded=%d invalid=%d urgent=%d unknown=%d upserted=%d "
          "townships=%d counties=%d provinces=%d consume_s=%.3f rollup_s=%.3f elapsed_s=%.3f check=%s"
          % (c["messages"], c["decoded"], c["invalid"], c["urgent"], c["unknown"], c["upserted"],
             c["townships"], c["counties"], c["provinces"], consume_s, rollup_s,
             consume_s + rollup_s, "ok" if ok else "FAILED"), flush=True)
    if not a.keep:
        peer.drop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
