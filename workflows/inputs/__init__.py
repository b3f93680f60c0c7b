"""What solvers take, read from a store: labelled splits in a model's class order, text weights,
pools, banks, auxiliary features.

The names below are imported from their modules on first use (``featurestore.lazy_exports``):
``fs solve`` reads labelled splits without the pool, prompt-bank and ``--input`` readers."""
from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore.lazy_exports import lazy_exports

if TYPE_CHECKING:  # the same names, for type checkers (tests/test_import_paths.py checks both agree)
    from workflows.inputs.arrays import (
        StoreInput,
        caps_support,
        context_prompts,
        descriptor_prompts,
        differential_prompts,
        parse_inputs,
        real_linear_rows,
        real_prompt_weights,
        solver_arrays,
        tipx_support,
    )
    from workflows.inputs.aux_features import check_aux_encoder, paired_features, paired_labelled
    from workflows.inputs.pool import check_pool, nearest_per_query, pool_captions, pool_features_at
    from workflows.inputs.prompt_banks import read_prompt_bank
    from workflows.inputs.solver_inputs import (
        check_encoder,
        class_mapping,
        class_names,
        labelled,
        labelled_views,
        load_model,
        model_classes,
        resolve_encoder,
        solver_class_params,
        split_labels,
        store_encoder,
        text_weights,
    )

_EXPORTS = {
    **dict.fromkeys(("StoreInput", "caps_support", "context_prompts", "descriptor_prompts", "differential_prompts",
                     "parse_inputs", "real_linear_rows", "real_prompt_weights", "solver_arrays", "tipx_support"),
                    "arrays"),
    **dict.fromkeys(("check_aux_encoder", "paired_features", "paired_labelled"), "aux_features"),
    **dict.fromkeys(("check_pool", "nearest_per_query", "pool_captions", "pool_features_at"), "pool"),
    "read_prompt_bank": "prompt_banks",
    **dict.fromkeys(("check_encoder", "class_mapping", "class_names", "labelled", "labelled_views", "load_model",
                     "model_classes", "resolve_encoder", "solver_class_params", "split_labels", "store_encoder",
                     "text_weights"), "solver_inputs"),
}
__all__ = [
    "StoreInput", "caps_support", "check_aux_encoder", "check_encoder", "check_pool", "class_mapping", "class_names",
    "context_prompts", "descriptor_prompts", "differential_prompts", "labelled", "labelled_views", "load_model",
    "model_classes", "nearest_per_query", "paired_features", "paired_labelled", "parse_inputs", "pool_captions",
    "pool_features_at", "read_prompt_bank", "real_linear_rows", "real_prompt_weights", "resolve_encoder",
    "solver_arrays", "solver_class_params", "split_labels", "store_encoder", "text_weights", "tipx_support"
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
