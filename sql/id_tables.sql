-- The tables that hold raw ids. Their id columns take the warehouse's id types: BIGINT (integer ids) or
-- VARCHAR (string ids), decided by the first published night; {user_id} and {item_id} are replaced by
-- store.state with one of those two type names, nothing else. Idempotent.

create table if not exists ratings (        -- each (user, item)'s current rating: the latest by timestamp; for
                                            -- implicit feedback its total weight (events added up)
    user_id   {user_id} not null,
    item_id   {item_id} not null,
    rating    double not null,
    timestamp bigint not null,              -- unix seconds; files without timestamps get their ingest time
    file_hash varchar not null              -- which file delivered it
);

create table if not exists user_index (      -- append-only: an id keeps its index night after night
    user_id  {user_id} primary key,
    user_idx integer not null unique
);

create table if not exists item_index (
    item_id  {item_id} primary key,
    item_idx integer not null unique
);

create table if not exists recommendations (
    run_id  varchar not null,
    user_id {user_id} not null,
    rank    integer not null,               -- 1 = best
    item_id {item_id} not null,
    score   double not null                 -- the predicted rating (explicit feedback), or the ranker's score
);

create table if not exists items (           -- optional item metadata (`--items`), joined into the views
    item_id {item_id} primary key,
    title   varchar,
    genres  varchar                          -- '|'-separated
);

create table if not exists similar_items (  -- per run: each item's nearest items by cosine on item factors
    run_id          varchar not null,
    item_id         {item_id} not null,
    rank            integer not null,         -- 1 = most similar; the item itself is never listed
    similar_item_id {item_id} not null,
    similarity      double not null           -- cosine similarity in [-1, 1]
);

create table if not exists users_meta (      -- optional user metadata (`--users`); replaced by each users file
    user_id {user_id} primary key
);

-- which path produced a row: 'model' (a user with ratings), 'baseline' (popularity published in place of a
-- worse ranker) or a cold-start policy for a user known only from the users table ('popularity',
-- 'average_taste', 'metadata'); added after the first release
alter table recommendations add column if not exists source varchar default 'model';
