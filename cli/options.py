"""Click options shared by several `fs` commands, so names and help stay consistent."""
from __future__ import annotations

import click


class NonEmpty(click.ParamType):
    """A name (split, bank, model): any text but the empty string."""

    name = "name"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("is empty: give a name", param, ctx)
        return value


NAME = NonEmpty()


class NumberList(click.ParamType):
    """Comma-separated numbers, each parsed by click's own ``item`` type (click.INT, click.FLOAT);
    a bad value is one usage line naming the option. ``skip_empty`` drops empty items ("1,2,")."""

    def __init__(self, item: click.ParamType, plural: str, skip_empty: bool = False) -> None:
        self.item = item
        self.skip_empty = skip_empty
        self.name = f"comma-separated {plural}"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        option = param.opts[0] if param is not None else "value"
        items = [v.strip() for v in str(value).split(",")]
        try:
            values = [self.item.convert(v, param, ctx) for v in items if v or not self.skip_empty]
        except click.BadParameter:
            self.fail(f"{option} takes {self.name}, got {value!r}", param, ctx)
        if not values:
            self.fail(f"{option} is empty", param, ctx)
        return values


store_option = click.option("--store", "store", required=True, type=click.Path(dir_okay=False),
                            help="The store file (.h5).")


def bank_option(help: str, required: bool = False):
    """``--bank NAME``: a text bank in the store (class weights, captions, descriptors, prompts)."""
    return click.option("--bank", "bank", type=NAME, required=required, default=None, help=help)


def seeds_option(help: str):
    """``--seeds 1,2,3``: random seeds, comma-separated, default 1 (the one spelling of every
    command; one that uses a single seed checks it with :func:`one_seed`)."""
    return click.option("--seeds", "seeds", type=NumberList(click.IntRange(min=0), "seeds"), default="1",
                        show_default=True, help=help)


def one_seed(seeds: list[int], what: str) -> int:
    """The only seed of ``seeds``; a usage error naming ``what`` uses it when there are several."""
    if len(seeds) != 1:
        raise click.UsageError(f"--seeds: {what} uses one seed; got {len(seeds)} ({','.join(map(str, seeds))})")
    return seeds[0]


def model_names(models: str, one: bool = False) -> list[str]:
    """The saved model names of ``--models A,B`` (a usage error when none, or when ``one`` and
    there are several)."""
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise click.UsageError("--models is empty: give comma-separated saved model names (or zero-shot)")
    if one and len(names) > 1:
        raise click.UsageError(f"--models: this command takes one model; got {len(names)} ({', '.join(names)})")
    return names
encoder_option = click.option("--encoder", default=None,
                              help="Encoder key in the store, e.g. ViT-B-32/openai (default: the store's only "
                                   "encoder; see `fs info`).")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
device_option = click.option("--device", default=None, help="torch device (default: cuda when present, else cpu).")
precision_option = click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default=None,
                                help="Model precision (default: fp16 on CUDA, fp32 on CPU).")
pretrained_override_option = click.option(
    "--pretrained", default=None,
    help="Checkpoint path to use instead of the one recorded in the store (its SHA-256 must match).")


def stored_encoder_options(command):
    """Options of commands that rebuild the encoder recorded in a store to encode texts:
    --pretrained (override the checkpoint path), --device, --precision, --quiet."""
    for option in (quiet_option, precision_option, device_option, pretrained_override_option):
        command = option(command)
    return command


def refuse_if_locked(store: str) -> None:
    """Refuse at once when another writer holds the store: before a command loads and hashes a
    checkpoint it would only write with afterwards (StoreLockedError, one line)."""
    from pathlib import Path

    from featurestore.store.writer_lock import WriterLock

    if Path(store).exists():
        probe = WriterLock(store)
        probe.acquire()
        probe.release()
