-- Published ratings that tonight's delta replaces.
delete from ratings as r
using delta as d
where r.user_id = d.user_id and r.item_id = d.item_id;
