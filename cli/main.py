"""The `fs` click group. Each command lives in its own module under cli/commands and imports
its heavy dependencies inside the command body, so `fs --help` stays fast."""
from __future__ import annotations

import importlib
import sys

import click

# command name -> module under cli.commands holding a click command named `command`
COMMANDS = {
    "extract": "extract",
    "text": "text",
    "index": "index",
    "search": "search",
    "info": "info",
    "solve": "solve",
    "predict": "predict",
    "eval": "evaluate",
    "ensemble": "ensemble",
    "real": "real",
    "captions": "captions",
    "descriptors": "descriptors",
    "import-logits": "import_logits",
    "ood": "ood",
    "schur": "schur",
    "retrieval": "retrieval",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = COMMANDS.get(name)
        if module is None:
            return None
        return importlib.import_module(f"cli.commands.{module}").command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUMMARIES.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


# One-line summaries shown by `fs --help` without importing each command's module.
SUMMARIES = {
    "extract": "Embed an image folder, manifest or tar shards into a store.",
    "text": "Encode class prompts or a text file into a text bank.",
    "index": "Build a FAISS index over a stored feature array.",
    "search": "Search a FAISS index with a text or an image.",
    "info": "Show what a store holds.",
    "solve": "Fit a closed-form solver on stored features.",
    "predict": "Predict a split with a saved model.",
    "ensemble": "Combine saved models into one saved ensemble solver.",
    "eval": "Compare saved models on a labelled split.",
    "real": "REAL: concept frequency in a pool's captions, REAL-Prompt text banks.",
    "captions": "Encode a split's captions into a row-aligned text bank (CapS-Adapter).",
    "descriptors": "Encode class, pair-wise or context descriptors into a text bank.",
    "import-logits": "Import another classifier's logits, aligned by id with a split.",
    "ood": "OOD detection scores (MSP, energy, GEN, COOkeD ensemble ...) with AUROC/FPR@95.",
    "schur": "Schur-complement decomposition: SCE diversity score, prompt removal.",
    "retrieval": "Image<->text recall@K, CLIPScore and modality gap over captions.",
}


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="featurestore")
def fs() -> None:
    """featurestore: extract CLIP features once, adapt without training."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    from featurestore.errors import FeatureStoreError

    try:
        fs.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (FeatureStoreError, ValueError, FileNotFoundError, PermissionError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
