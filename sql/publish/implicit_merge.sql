-- Implicit feedback: tonight's events add to the published totals of their pairs.
update ratings as r
set rating = r.rating + d.rating, timestamp = greatest(r.timestamp, d.timestamp), file_hash = d.file_hash
from delta as d
where r.user_id = d.user_id and r.item_id = d.item_id;
