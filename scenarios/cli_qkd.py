"""``iomt qkd``: B92 key distribution from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from iomt.scenarios.cli_support import guarded

qkd_app = typer.Typer(no_args_is_help=True, help="B92 quantum key distribution.")


@qkd_app.command("simulate")
@guarded
def qkd_simulate(
    qubits: Annotated[int, typer.Option("--qubits", min=64, help="qubits Alice sends")],
    seed: Annotated[int, typer.Option("--seed", help="random seed")],
    eve: Annotated[
        str | None,
        typer.Option("--eve", help="intercept-resend | intercept-resend-b92 | helstrom | usd"),
    ] = None,
    eve_fraction: Annotated[
        float, typer.Option("--eve-fraction", min=0.0, max=1.0, help="share of qubits attacked")
    ] = 1.0,
    length_km: Annotated[float, typer.Option("--length-km", min=0.0, help="fibre length")] = 10.0,
    backend: Annotated[str, typer.Option("--backend", help="numpy | qiskit")] = "numpy",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """One B92 session over a simulated link; an abort is a result, not an error."""
    import json

    from iomt.errors import UsageError
    from iomt.qkd_channel.eve import EVE_MODELS
    from iomt.qkd_channel.simulation import simulate

    if eve is not None and eve not in EVE_MODELS:
        raise UsageError(f"--eve {eve}: choose one of {', '.join(EVE_MODELS)}")
    if backend not in ("numpy", "qiskit"):
        raise UsageError(f"--backend {backend}: choose numpy or qiskit")
    result = simulate(
        qubits,
        eve_model=eve,
        eve_fraction=eve_fraction,
        length_km=length_km,
        backend=backend,
        seed=seed,  # type: ignore[arg-type]
    )
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for key, value in result.items():
            typer.echo(f"{key:>16}: {value}")
