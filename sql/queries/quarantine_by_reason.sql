-- Why rows were not loaded, per file.
with final as (
    select path, reason, count(*) as n_rows, min(row_number) as first_row
    from quarantine
    group by path, reason
)
select * from final order by path, n_rows desc;
