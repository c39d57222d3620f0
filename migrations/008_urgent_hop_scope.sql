-- An urgent incident's hops are scoped by where the incident began, not by
-- the unit of each hop: a county official's timeline of a village's
-- incident must show the province hop too (its unit, the province, lies
-- above the county's subtree).  The subquery is itself scoped by
-- urgent_report's policy, so a hop is visible exactly when its incident is;
-- it is one probe of urgent_report's primary key per hop.
DROP POLICY dashboard_scope ON rollcall.urgent_hop;
CREATE POLICY dashboard_scope ON rollcall.urgent_hop FOR SELECT TO rollcall_dashboard
  USING (EXISTS (SELECT 1 FROM rollcall.urgent_report r WHERE r.report_id = urgent_hop.report_id));
