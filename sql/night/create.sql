-- The night's winning rating per (user, item), built file by file in name order, published as one delta.
create or replace temp table night (
    user_id   bigint not null,
    item_id   bigint not null,
    rating    double not null,
    timestamp bigint not null,
    file_hash varchar not null
);
