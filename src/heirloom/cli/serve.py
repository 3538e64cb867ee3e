"""`heirloom serve`: expose a local model through the OpenAI protocol on loopback."""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--model", "-m", default="smollm2-135m", help="model reference to serve; see `heirloom models`")
@click.option("--host", default="127.0.0.1", help="address to bind (there is no authentication: keep it on loopback)")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, help="port to bind (0: any free port)")
@click.option("--batch-size", type=int, default=None, help="rows decoded together (backends with this option: hf; "
              "default: sized to the device)")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, ... (backends with this option: hf; "
              "default: cuda if available)")
@click.option("--dtype", default=None, help="float32, bfloat16, ... (backends with this option: hf, vllm; "
              "default auto: bfloat16 on a GPU and on CPUs with AVX512-BF16/AMX, else float32)")
@click.option("--option", "backend_options", multiple=True, metavar="KEY=VALUE",
              help="backend option, e.g. gpu_memory_utilization=0.8 (vllm); repeatable")
@click.option("--served-model-name", default=None, help="the `model` name clients send (default: --model as given)")
@click.option("--batching/--no-batching", default=True,
              help="gather concurrent generation requests into shared model calls (hf, vllm) [on]")
def command(model, host, port, batch_size, device, dtype, backend_options, served_model_name, batching):
    """Serve MODEL at http://HOST:PORT/v1 (chat/completions, completions, models).

    Reach it from heirloom as openai:NAME@http://HOST:PORT/v1. The model makes
    one call at a time (models are not thread-safe); generation requests that
    arrive together share a call, each with its own seed. Stop with Ctrl-C.
    """
    import logging

    from ..errors import HeirloomError
    from ..generation import check_options, common_options, make_backend
    from ..generation.server import OpenAIServer
    from ..models.refs import ModelRef
    from .options import parse_options

    ref = ModelRef.parse(model)
    flags = {"batch_size": batch_size, "device": device, "dtype": dtype}
    options = common_options(ref, flags)
    # Given on purpose, so a flag the backend cannot use is an error, not silently dropped.
    wrong = [f"--{k.replace('_', '-')}" for k, v in flags.items() if v is not None and k not in options]
    if wrong:
        raise HeirloomError(f"{', '.join(wrong)}: not an option of the {ref.backend} backend")
    options.update(parse_options(backend_options))
    check_options(ref, options)
    name = served_model_name or model
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host} without authentication; anyone who reaches it can use the model",
                   err=True)
    # Bind before loading: a busy port fails in a second, not after the model loads.
    server = OpenAIServer(None, host, port, model_name=name, batching=batching)
    try:
        server.backend = make_backend(ref, **options)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        click.echo(f"serving {name} ({server.backend.name} backend) at {server.url}\n"
                   f"  use it as: openai:{name}@{server.url}", err=True)
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.server_close()
        if server.backend is not None:
            server.backend.close()
