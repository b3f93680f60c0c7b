"""`fs serve`: search and browse a store from a web page, model and indexes loaded once."""
from __future__ import annotations

import click

from cli.options import encoder_option, store_option, stored_encoder_options


class _MissingExtra(click.ClickException):
    """A missing optional dependency: a user error (exit 2), one line."""

    exit_code = 2


@click.command("serve")
@store_option
@encoder_option
@click.option("--split", "splits", multiple=True,
              help="Split to serve (repeatable; default: every split with this encoder's features).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but a loopback address is reachable from other machines.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: a free port, printed at start).")
@click.option("--factory", default="Flat", show_default=True, help="Which index to use (built if missing or stale).")
@stored_encoder_options
def command(store: str, encoder: str | None, splits: tuple[str, ...], host: str, port: int, factory: str,
            pretrained: str | None, device: str | None, precision: str | None, quiet: bool) -> None:
    """Serve a search API and a web page over a store's images (Ctrl-C stops).

    GET /api/search?text=...|id=...&k=10&split=X&class=NAME, POST /api/search with an image,
    GET /api/info, GET /thumb/SPLIT/ROW and the page at /.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise _MissingExtra(f"fs serve needs {exc.name}: pip install -e \".[serve]\"") from None
    from featurestore.encoders import load_encoder_from_info
    from featurestore.server.app import create_app
    from featurestore.server.listener import exposure_warning, open_listener, run, url_of
    from featurestore.server.searcher import StoreSearcher
    from featurestore.store.feature_store import FeatureStore
    from workflows.inputs.solver_inputs import resolve_encoder

    warning = exposure_warning(host)
    if warning:
        click.echo(warning, err=True)
    sock = open_listener(host, port)
    try:
        with FeatureStore(store) as reader:
            encoder = resolve_encoder(reader, encoder)
            info = reader.encoder_info(encoder)
        if not quiet:
            click.echo(f"loading {info.get('model')} ({info.get('weights')}) ...", err=True)
        model = load_encoder_from_info(info, pretrained=pretrained, device=device, precision=precision)
        searcher = StoreSearcher(store, encoder, splits or None, factory=factory, encoder_model=model, quiet=quiet)
        try:
            for skipped in searcher.skipped:
                click.echo(f"warning: split {skipped['split']!r} is not served: {skipped['reason']}", err=True)
            app = create_app(searcher)
            served = ", ".join(f"{s.name} ({s.index.ntotal} rows)" for s in searcher.splits.values())
            click.echo(f"fs serve: {url_of(sock)}  splits: {served}  (Ctrl-C stops)")
            run(app, sock, quiet=quiet)
            app.state.thumbnails.close()
        finally:
            searcher.close()
    finally:
        sock.close()
