-- Each item index's raw id and title: tonight's item file first, then what was published.
with idx as (
    select item_idx, item_id from item_index
    union all
    select item_idx, item_id from new_item_index
),
titles as (
    select item_id, title from night_items
    union all
    select item_id, title from items anti join night_items using (item_id)
),
final as (
    select x.item_idx, x.item_id, t.title
    from idx as x
    left join titles as t using (item_id)
)
select * from final order by item_idx
