"""The `fs` click group. Each command lives in its own module under cli/commands and imports
its heavy dependencies inside the command body, so `fs --help` stays fast."""
from __future__ import annotations

import importlib
import os
import sys
import traceback

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
    "models": "models",
    "datasets": "datasets",
    "benchmark": "benchmark",
    "serve": "serve",
    "verify": "verify",
    "curate": "curate",
    "anomaly": "anomaly",
    "results": "results",
    "export": "export",
    "consolidate": "consolidate",
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
    "verify": "Read a whole store (checksums included) and report every damaged part.",
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
    "models": "List encoders for fs extract: open_clip architectures and tags, timm image encoders.",
    "retrieval": "Image<->text recall@K, CLIPScore and modality gap over captions.",
    "datasets": "Known datasets (CoOp's 11, ImageNet shifts, CIFAR, wds): layout, found or missing, sizes.",
    "benchmark": "The few-shot papers' table: datasets x methods x shots x seeds from cached features.",
    "serve": "Search and browse a store from a web page (model and index loaded once).",
    "curate": "MetaCLIP curation of a captioned pool: entry matching, balancing with t, a manifest of kept rows.",
    "anomaly": "Zero-/few-shot image anomaly detection (prompt ensembles, normal memory) with AUROC/AUPR.",
    "results": "Collect result files (fs eval/solve --output, CLIP_benchmark's) into one CSV.",
    "export": "Write a split's embeddings in clip-retrieval's layout (img_emb/*.npy, metadata/*.parquet).",
    "consolidate": "Copy a --cluster split's shard files into the store file (no .shards/ folder needed).",
}


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="featurestore")
def fs() -> None:
    """featurestore: extract CLIP features once, adapt without training."""


def _user_error(message: str, code: int = 2) -> None:
    """One line on stderr and exit ``code``; with FS_DEBUG=1 the traceback first."""
    if os.environ.get("FS_DEBUG", "") not in ("", "0"):
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point. User errors (click's usage errors, ``solvers.errors.InputError``,
    ``featurestore.errors.FeatureStoreError`` and missing or unreadable files the user named)
    become one line on stderr and exit code 2; anything else is a bug and keeps its traceback.
    ``FS_DEBUG=1`` prints the traceback of user errors too."""
    from cli.own_packages import foreign_packages

    shadowed = foreign_packages()
    if shadowed:
        _user_error("; ".join(f"the module {name!r} is imported from {where}, not featurestore's"
                              for name, where in shadowed)
                    + " (another package or a local file takes the name: uninstall or rename it; see README, Install)")
    from featurestore.errors import FeatureStoreError
    from solvers.errors import InputError
    from workflows.blas_threads import limit_from_environment

    try:
        limit_from_environment()
        fs.main(args=argv, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(0)
    except click.exceptions.Abort:
        _user_error("aborted", 130)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _user_error(" ".join(f"{exc.format_message()}{hint}".split()), exc.exit_code)
    except click.ClickException as exc:
        _user_error(" ".join(exc.format_message().split()), exc.exit_code)
    except (FeatureStoreError, InputError, FileNotFoundError, PermissionError, IsADirectoryError,
            NotADirectoryError) as exc:
        _user_error(" ".join(str(exc).split()) or type(exc).__name__)
    except (OSError, RuntimeError) as exc:  # a full disk under any writer (index files, exports, ...)
        from featurestore.store.disk_space import first_path, is_no_space, no_space_error

        if not is_no_space(exc):
            raise
        path = first_path(exc)
        _user_error(str(no_space_error(path)) if path else "no space left on the device being written: free space "
                    "and re-run to resume")
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
