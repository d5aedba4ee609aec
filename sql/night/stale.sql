-- Rows older than the current rating of their pair: superseded (counted, not loaded).
select count(*) from incoming where old_ts is not null and timestamp < old_ts;
