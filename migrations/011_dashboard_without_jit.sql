-- The dashboard's queries probe a county's rows through the indexes and
-- finish in milliseconds, but their generic plans (007) carry whole-table
-- cost estimates, over jit_above_cost once the archive holds national
-- history: each execution then compiled its expressions first, 1-2 s of
-- LLVM for a 10 ms query.
ALTER ROLE rollcall_dashboard SET jit = off;
