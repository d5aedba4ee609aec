-- Implicit feedback: tonight's events so far plus this file's, per pair (events add up; the latest time
-- and the latest file that touched a pair are kept). Parameter: the file's number (night_files).
create or replace temp table night as
select
    coalesce(n.user_id, i.user_id) as user_id,
    coalesce(n.item_id, i.item_id) as item_id,
    coalesce(n.rating, 0) + coalesce(i.rating, 0) as rating,
    greatest(coalesce(n.timestamp, i.timestamp), coalesce(i.timestamp, n.timestamp)) as timestamp,
    case when i.user_id is not null then ? else n.file_no end as file_no
from night as n
full outer join incoming as i on n.user_id = i.user_id and n.item_id = i.item_id;
