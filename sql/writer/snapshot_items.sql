-- Each item index's raw id, and its title when item metadata was ingested (the report shows titles).
select x.item_idx, x.item_id, i.title
from item_index as x
left join items as i using (item_id)
order by x.item_idx;
