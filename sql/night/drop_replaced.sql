-- Tonight's earlier winners that a row of this file, at least as new, replaces.
delete from night as n
using incoming as i
where n.user_id = i.user_id and n.item_id = i.item_id and i.timestamp >= i.old_ts;
