"""Recipes and `edgeopt run`: the whole pipeline, resumable, with a report."""

from edgeopt.pipeline.compare import compare_runs
from edgeopt.pipeline.recipe import Recipe, load_recipe
from edgeopt.pipeline.report import write_report
from edgeopt.pipeline.run import RunResult, run_recipe

__all__ = ["Recipe", "RunResult", "compare_runs", "load_recipe", "run_recipe", "write_report"]
