-- Users known from the users table (sign-up metadata) who have no ratings yet: the cold-start policy's users.
create or replace view cold_users as
with known as (
    select user_id from users_meta
),
final as (
    select k.user_id
    from known as k
    anti join (select distinct user_id from ratings) as r using (user_id)
)
select * from final;
