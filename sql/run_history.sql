-- Every run, newest first (in the order they started, whatever the clock said), with its size, duration,
-- headline metrics and the version it was published as (null if it was not).
create or replace view run_history as
with final as (
    select
        run_id,
        status,
        version,
        started_at,
        finished_at,
        round(epoch(finished_at) - epoch(started_at), 1) as seconds,
        n_ratings,
        n_users,
        n_items,
        n_recommendations,
        metrics->>'rating_model' as rating_model,
        metrics->>'ranker' as ranker,
        cast(metrics->>'valid_rmse' as double) as valid_rmse,
        cast(metrics->>'ndcg_at_10' as double) as ndcg_at_10,
        cast(metrics->>'coverage_at_10' as double) as coverage_at_10,
        error,
        seq
    from runs
)
select * from final order by seq desc nulls last, started_at desc;
