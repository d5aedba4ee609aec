-- Ids seen for the first time get the next free indices, in raw-id order (append-only: an id keeps
-- its index night after night).
insert into item_index
select item_id, (select coalesce(max(item_idx), -1) from item_index) + row_number() over (order by item_id)
from (select distinct r.item_id from ratings as r anti join item_index as t using (item_id));
