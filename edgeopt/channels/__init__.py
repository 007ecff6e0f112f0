"""Channel pruning: remove whole filters/units and rewire their consumers, for a smaller, faster model.

`prune_channels` builds the pruned model, `channel_sensitivity` measures what pruning
each group alone costs in accuracy, `model_cost` counts parameters and MACs.
"""

from edgeopt.channels.cost import ModelCost, model_cost
from edgeopt.channels.criteria import Criterion
from edgeopt.channels.prune import ChannelPlan, GroupPlan, prune_channels
from edgeopt.channels.sensitivity import SensitivityResult, channel_sensitivity

__all__ = ["ChannelPlan", "Criterion", "GroupPlan", "ModelCost", "SensitivityResult", "channel_sensitivity",
           "model_cost", "prune_channels"]
