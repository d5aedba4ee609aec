-- Ids seen for the first time get the next free indices, in raw-id order (append-only: an id keeps
-- its index night after night).
insert into user_index
select user_id, (select coalesce(max(user_idx), -1) from user_index) + row_number() over (order by user_id)
from (select distinct r.user_id from ratings as r anti join user_index as t using (user_id));
