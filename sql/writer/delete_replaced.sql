-- Current ratings that a row of `incoming` at least as new replaces.
delete from ratings as r
using incoming as i
where r.user_id = i.user_id and r.item_id = i.item_id and i.old_ts is not null and i.timestamp >= i.old_ts;
