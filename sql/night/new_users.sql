-- Users seen for the first time get the next free indices, in raw-id order (append-only: a user keeps
-- its index night after night).
create or replace temp table new_user_index as
select user_id, cast((select coalesce(max(user_idx), -1) from user_index) + row_number() over (order by user_id) as integer) as user_idx
from (select distinct user_id from night anti join user_index using (user_id));
