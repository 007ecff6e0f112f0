"""Magnitude pruning during `fit`: schedules, the `Pruning` callback, reports."""

from edgeopt.pruning.callback import KeepSparsity, Pruning
from edgeopt.pruning.report import SparsityReport, sparsity_report
from edgeopt.pruning.schedule import ConstantSparsity, PolynomialDecay, PruningSchedule

__all__ = ["ConstantSparsity", "KeepSparsity", "PolynomialDecay", "Pruning", "PruningSchedule", "SparsityReport",
           "sparsity_report"]
