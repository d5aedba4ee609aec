-- Items seen for the first time get the next free indices, in raw-id order (append-only: a item keeps
-- its index night after night).
create or replace temp table new_item_index as
select item_id, cast((select coalesce(max(item_idx), -1) from item_index) + row_number() over (order by item_id) as integer) as item_idx
from (select distinct item_id from night anti join item_index using (item_id));
