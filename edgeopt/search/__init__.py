"""`edgeopt search`: meet an accuracy / latency / size budget on a device, automatically.

An Optuna study (multi-objective: accuracy drop, size, latency; the budget as
constraints) over a recipe's `search.space`. Modules: `space` (the dimensions),
`budget`, `settings` (the recipe section), `objective` (one trial), `baseline`,
`storage` (SQLite or PostgreSQL, and the claim lock), `worker`, `study`
(`run_search`), `report`. Nothing is imported here: `edgeopt.run_search` loads them.
"""
