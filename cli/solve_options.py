"""Options that `fs solve` and `fs benchmark` share, so both paths offer the same choices under the
same names: few-shot seeds, the augmented-view recipes, the sampler and held-out validation rows."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cli.options import NumberList

#: ``workflows.solve.SAMPLERS``, written out so that ``--help`` imports no solver module (a test keeps them equal).
SAMPLER_CHOICES = ("auto", "numpy", "coop", "gda-iclr24", "tip-adapter")

seeds_option = click.option(
    "--seeds", type=NumberList(click.IntRange(min=0), "integers", skip_empty=True), default="1", show_default=True,
    help="Comma-separated few-shot sampling seeds (several: a run per seed, mean and std reported).")
views_as_option = click.option(
    "--views-as", type=click.Choice(["samples", "mean"]), default=None,
    help="Build the training set from the stored augmented views (fs extract --views N), without the centre "
         "crop: 'samples' = every view a row (official GDA), 'mean' = each image's views averaged, then "
         "normalized (official Tip-Adapter). Applied after the few-shot draw.")
sampler_option = click.option(
    "--sampler", type=click.Choice(SAMPLER_CHOICES), default="auto", show_default=True,
    help="Few-shot sampler: auto = coop for stores of named datasets (CoOp's exact images), else numpy; "
         "gda-iclr24 = GDA's official draws (one stream per seed over shots 1, 2, 4, 8, 16); tip-adapter = "
         "Tip-Adapter's (always seed 1: give --seeds 1).")
val_shots_option = click.option("--val-shots", type=click.IntRange(min=1), default=None,
                                help="Sample this many validation rows per class (with each seed).")
allow_fewer_option = click.option("--allow-fewer", is_flag=True,
                                  help="Take all rows of classes smaller than --shots / --val-shots.")
calibrate_option = click.option(
    "--calibrate", is_flag=True, help="Fit a softmax temperature on the validation rows (temperature scaling).")


def holdout_option(default: int | None) -> Callable[[Any], Any]:
    """--holdout N: without a validation split, N rows per class held out of --train for the search."""
    return click.option("--holdout", type=click.IntRange(min=1), default=default, show_default=default is not None,
                        help="Without a validation split, hold this many rows per class out of --train "
                             "(never the few-shot rows) for the hyper-parameter search.")
