-- The dashboard's queries probe a county's rows through the indexes and
-- finish in milliseconds, but their generic plans (007) carry whole-table
-- cost estimates once the tables hold national history.  With those
-- estimates each execution compiled its expressions first (JIT: 1-2 s of
-- LLVM for a 10 ms query) and started parallel workers (100 ms of start-up
-- for a 3 ms query, and the requests of a busy county queued behind them).
ALTER ROLE rollcall_dashboard SET jit = off;
ALTER ROLE rollcall_dashboard SET max_parallel_workers_per_gather = 0;
