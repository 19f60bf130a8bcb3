"""Command-line interface: a click group over the library (schedule, verify, costs, render, list); errors are one line."""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

import click

from parallelviz.checker import ScheduleError
from parallelviz.config import ConfigError, ModelConfig, ParallelConfig, RunConfig
from parallelviz.costs import ByteSizes, compute_costs
from parallelviz.schedule import Schedule
from parallelviz.schedules import build_schedule

__all__ = ["cli", "main", "config_options", "schedule_data"]

_MODEL, _PARALLEL = ModelConfig(), ParallelConfig()


class _IntAtLeast(click.IntRange):
    """An integer with a lower bound, reported as "not a valid integer" (not "integer range") when unparsable."""

    name = "integer"

    def __init__(self, minimum: int) -> None:
        super().__init__(min=minimum)


class _OneLineErrors(click.Group):
    """A click group whose usage and configuration errors print one line to stderr and exit 2.

    Also in standalone mode (as ``CliRunner`` invokes it), so tests see what users see.
    """

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as error:
            click.echo(error.format_message())
            code = 0
        except (click.UsageError, ConfigError) as error:
            message = error.format_message() if isinstance(error, click.UsageError) else str(error)
            click.echo("Error: " + " ".join(message.split()), err=True)
            code = 2
        except click.ClickException as error:
            error.show()
            code = error.exit_code
        except click.Abort:
            click.echo("Aborted!", err=True)
            code = 1
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Schedules of parallel neural-network training: print, verify, cost, animate."""


_CONFIG_OPTIONS = [
    click.option("--dp", type=int, default=_PARALLEL.dp, show_default=True, help="Data-parallel degree."),
    click.option("--tp", type=int, default=_PARALLEL.tp, show_default=True, help="Tensor-parallel degree."),
    click.option("--layers", type=int, default=_MODEL.layers, show_default=True, help="Number of MLP blocks."),
    click.option("--d-model", type=int, default=_MODEL.d_model, show_default=True, help="Residual width."),
    click.option("--d-hidden", type=int, default=_MODEL.d_hidden, show_default=True, help="Hidden width."),
    click.option("--batch", type=int, default=_MODEL.batch, show_default=True, help="Global batch size."),
    click.option(
        "--grad-sync",
        type=click.Choice(["end", "overlap"]),
        default=_PARALLEL.grad_sync,
        show_default=True,
        help="When data-parallel gradients are all-reduced.",
    ),
]


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the model and parallelism options to a command, passing it ``config: RunConfig`` instead.

    Raises
    ------
    ConfigError
        When the command runs with an invalid combination (reported as one line, exit 2).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        model = ModelConfig(**{name: kwargs.pop(name) for name in ("d_model", "d_hidden", "batch", "layers")})
        parallel = ParallelConfig(**{name: kwargs.pop(name) for name in ("dp", "tp", "grad_sync")})
        return func(*args, config=RunConfig(model, parallel), **kwargs)

    for option in reversed(_CONFIG_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def schedule_data(schedule: Schedule) -> dict[str, Any]:
    """A schedule as JSON-ready data: its name, config and steps, each step with its phase and ops."""
    m, p = schedule.config.model, schedule.config.parallel
    return {
        "name": schedule.name,
        "config": {
            "d_model": m.d_model,
            "d_hidden": m.d_hidden,
            "batch": m.batch,
            "layers": m.layers,
            "dp": p.dp,
            "tp": p.tp,
            "grad_sync": p.grad_sync,
        },
        "steps": [
            {
                "phase": step.phase,
                "ops": [
                    {
                        "gpu": op.gpu,
                        "kind": op.kind.value,
                        "tensor": str(op.tensor),
                        "reads": [str(t) for t in op.reads],
                        "group": list(op.group),
                        "reduce": op.reduce,
                        "partial": op.partial,
                    }
                    for op in step.ops
                ],
            }
            for step in schedule.steps
        ],
    }


@cli.command("schedule")
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print the steps as JSON instead of a grid.")
def schedule_command(config: RunConfig, as_json: bool) -> int:
    """Print the schedule as a grid of steps by GPUs."""
    schedule = build_schedule(config)
    click.echo(json.dumps(schedule_data(schedule), indent=2) if as_json else schedule.format_grid())
    return 0


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@cli.command("verify")
@config_options
@click.option("--seed", type=_IntAtLeast(0), default=0, show_default=True, help="Seed of the random data.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (infinite errors as null).")
def verify_command(config: RunConfig, seed: int, as_json: bool) -> int:
    """Run the schedule on numpy shards and compare with one unsharded pass (exit 1 on mismatch)."""
    from parallelviz.executor import verify

    try:
        result = verify(build_schedule(config), seed=seed)
    except ScheduleError as error:
        click.echo(f"Error: invalid schedule: {error}", err=True)
        return 1
    if as_json:
        data = {
            "ok": result.ok,
            "max_abs_error": _finite(result.max_abs_error),
            "loss_error": _finite(result.loss_error),
            "grad_error": _finite(result.grad_error),
            "replica_error": _finite(result.replica_error),
            "loss": _finite(result.loss),
            "reference_loss": result.reference_loss,
            "tolerance": result.tolerance,
            "seed": seed,
            "errors": {name: _finite(value) for name, value in result.errors.items()},
        }
        click.echo(json.dumps(data, indent=2))
    else:
        verdict = "OK" if result.ok else "MISMATCH"
        click.echo(f"loss            {result.loss:.12g} (reference {result.reference_loss:.12g})")
        click.echo(f"loss error      {result.loss_error:.3g}")
        click.echo(f"gradient error  {result.grad_error:.3g} (max over {len(result.errors)} weight gradients)")
        click.echo(f"replica error   {result.replica_error:.3g}")
        click.echo(f"{verdict}: max abs error {result.max_abs_error:.3g} (tolerance {result.tolerance:g})")
    return 0 if result.ok else 1


_BYTE_OPTIONS = {
    "param": "Bytes per parameter element.",
    "grad": "Bytes per weight-gradient element.",
    "optimizer": "Bytes of optimizer state per parameter.",
    "activation": "Bytes per activation element.",
}


def _byte_size_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--param-bytes`` ... ``--activation-bytes`` (positive integers, defaults of ``ByteSizes``)."""
    defaults = ByteSizes()
    for name, text in reversed(_BYTE_OPTIONS.items()):
        option = click.option(
            f"--{name}-bytes",
            f"{name}_bytes",
            type=_IntAtLeast(1),
            default=getattr(defaults, name),
            show_default=True,
            help=text,
        )
        func = option(func)
    return func


@cli.command("costs")
@config_options
@_byte_size_options
@click.option("--json", "as_json", is_flag=True, help="Print the costs as JSON instead of a table.")
def costs_command(
    config: RunConfig,
    param_bytes: int,
    grad_bytes: int,
    optimizer_bytes: int,
    activation_bytes: int,
    as_json: bool,
) -> int:
    """Print the FLOPs, bytes sent and peak memory of every GPU (exit 1 on an invalid schedule)."""
    sizes = ByteSizes(param_bytes, grad_bytes, optimizer_bytes, activation_bytes)
    try:
        costs = compute_costs(build_schedule(config), sizes)
    except ScheduleError as error:
        click.echo(f"Error: invalid schedule: {error}", err=True)
        return 1
    click.echo(json.dumps(costs.to_json(), indent=2) if as_json else costs.format_table())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``parallelviz`` command; exits with 0 (ok), 1 (failed check) or 2 (bad options)."""
    return cli.main(args=argv, prog_name="parallelviz")


if __name__ == "__main__":
    main()


@cli.command()
@config_options
@click.option(
    "--quality",
    type=click.Choice(["l", "m", "h", "p", "k"]),
    default="h",
    show_default=True,
    help="Manim quality: l=480p15, m=720p30, h=1080p60, p=1440p60, k=2160p60.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Video file to write [default: media/parallelviz/dp<D>_tp<T>_L<layers>.mp4].",
)
@click.option("--title", default=None, help="Title shown at the top left.")
def render(config: RunConfig, quality: str, output: Path | None, title: str | None) -> None:
    """Animate the schedule of a configuration to an mp4 (and .srt subtitles)."""
    from parallelviz.render.standalone import render_config  # imports manim: keep the CLI fast otherwise

    if output is None:
        p, m = config.parallel, config.model
        output = Path("media") / "parallelviz" / f"dp{p.dp}_tp{p.tp}_L{m.layers}_{p.grad_sync}.mp4"
    if output.suffix != ".mp4":
        raise click.BadParameter("must end in .mp4", param_hint="'--output'")
    try:
        path = render_config(config, quality, output, title)
    except RuntimeError as error:  # LaTeX missing: say how to install it
        raise click.ClickException(str(error)) from None
    click.echo(str(path))


@cli.command("list")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("scenes"))
def list_scenes(directory: Path) -> None:
    """List the scene classes of every file in DIRECTORY (default: ./scenes), as `manim` arguments."""
    from parallelviz.scenes_in import scene_names

    files = sorted(directory.glob("*.py"))
    if not files:
        raise click.BadParameter(f"no scene files in {directory}", param_hint="'DIRECTORY'")
    for path in files:
        for name in scene_names(path):
            click.echo(f"{path} {name}")
