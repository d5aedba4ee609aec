-- The runs whose lists the last `keep` versions serve (a rollback version serves an older run's).
-- Parameter: keep.
select distinct run_id from (select run_id from versions order by version desc limit ?);
