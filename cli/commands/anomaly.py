"""`fs anomaly`: image-level zero-shot / few-shot anomaly detection on stored features
(solvers.ood.anomaly) with prompts composed from editable state lists (featurestore.text.anomaly_prompts)."""
from __future__ import annotations

import json

import click

from cli.options import NAME, encoder_option, one_seed, seeds_option, store_option, stored_encoder_options


@click.command("anomaly")
@store_option
@encoder_option
@click.option("--split", required=True, type=NAME, help="Labelled split to score (normal class vs the others).")
@click.option("--object", "object_name", required=True, help="The object's name in the prompts, e.g. bottle.")
@click.option("--normal-class", default="good", show_default=True, help="The class of normal images.")
@click.option("--states", type=click.Path(dir_okay=False), default=None,
              help="JSON file of normal / anomalous state phrases and templates "
                   "(default: featurestore/data/anomaly_states.json).")
@click.option("--normal-split", type=NAME, default=None, help="Split holding normal images for the few-shot memory.")
@click.option("--shots", type=click.IntRange(min=1), default=None,
              help="Normal images in the memory (a seeded sample of --normal-split; default: all of them).")
@seeds_option("Seed of the --shots sample (one value).")
@click.option("--memory-weight", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Weight of the memory score against the zero-shot score (WinCLIP+ averages them).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@stored_encoder_options
def command(store: str, encoder: str | None, split: str, object_name: str, normal_class: str, states: str | None,
            normal_split: str | None, shots: int | None, seeds: list[int], memory_weight: float, as_json: bool,
            pretrained: str | None, device: str | None, precision: str | None, quiet: bool) -> None:
    """Score SPLIT's images for anomalies with prompts about OBJECT; report image AUROC and AUPR."""
    from featurestore.encoders import image_only_error, load_encoder_from_info
    from featurestore.store.feature_store import FeatureStore
    from featurestore.text.anomaly_prompts import compose_prompts, read_states
    from solvers.ood.anomaly import PromptAnomalyDetector, anomaly_metrics
    from workflows.anomaly import anomaly_inputs
    from workflows.inputs.solver_inputs import resolve_encoder

    seed = one_seed(seeds, "the --shots sample of fs anomaly")
    if shots is not None and normal_split is None:
        raise click.UsageError("--shots samples the normal memory: give --normal-split too")
    prompts = compose_prompts(read_states(states), object_name)
    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        info = reader.encoder_info(encoder)
        if "text" not in info.get("modalities", ["image", "text"]):
            raise image_only_error(encoder)
        X, is_anomalous, memory, used = anomaly_inputs(reader, encoder, split, normal_class, normal_split, shots, seed)
    model = load_encoder_from_info(info, pretrained=pretrained, device=device, precision=precision)
    normal = model.encode_texts(prompts["normal"], quiet=quiet or as_json)
    anomalous = model.encode_texts(prompts["anomalous"], quiet=quiet or as_json)
    detector = PromptAnomalyDetector(normal, anomalous, memory_weight=memory_weight).fit(memory)
    results = {"zero_shot": anomaly_metrics(is_anomalous, detector.zero_shot_scores(X))}
    if memory is not None:
        results["memory"] = anomaly_metrics(is_anomalous, detector.memory_scores(X))
        results["combined"] = anomaly_metrics(is_anomalous, detector.score_samples(X))
    summary = {"encoder": encoder, "object": object_name, **used, "states": states or "default",
               "prompts": {k: len(v) for k, v in prompts.items()}, "memory_weight": memory_weight, "results": results}
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    first = results["zero_shot"]
    click.echo(f"{split}: {first['n_normal']} normal ({normal_class!r}), {first['n_anomalous']} anomalous; "
               f"{len(prompts['normal'])} normal and {len(prompts['anomalous'])} anomalous prompts for {object_name!r}")
    for name, label in (("zero_shot", "zero-shot prompts"), ("memory", f"{used['shots']}-shot normal memory"),
                        ("combined", f"combined (memory weight {memory_weight:g})")):
        if name in results:
            auroc, aupr = 100 * results[name]["auroc"], 100 * results[name]["aupr"]
            click.echo(f"  {label:<32} image AUROC {auroc:6.2f}  AUPR {aupr:6.2f}")
