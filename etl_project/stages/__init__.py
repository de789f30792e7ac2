"""The daily job's stages as plain functions, in order: snapshot -> balances -> report ->
publish. Dagster assets (and tests) call these; nothing here imports Dagster."""
