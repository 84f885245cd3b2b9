"""Named paper recipes: each a function returning a Config, with a `:smoke` variant of every one.

    config = get_recipe("cifar10-ldam-drw-sam")         # the paper's run
    config = get_recipe("cifar10-ldam-drw-sam:smoke")   # 2 epochs on a few hundred images
"""

from tailsam.recipes.registry import RECIPES, get_recipe, recipe_table, recipe_with_overrides
from tailsam.recipes import cifar, digits, glmc, imagenet, ltsam, paco  # noqa: F401  (registers the recipes)

__all__ = ["RECIPES", "get_recipe", "recipe_table", "recipe_with_overrides"]
