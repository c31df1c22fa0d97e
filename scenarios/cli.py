"""The ``iomt`` command line: validate and run scenarios, or run one agent against a broker.

Exit codes: 0 success, 2 invalid scenario or usage, 1 run failure.  Errors print one
line (``--debug`` shows the traceback).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from iomt_testbed.errors import TestbedError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="iomt-testbed: federated intrusion detection for medical IoT over MQTT.",
)

F = TypeVar("F", bound=Callable[..., Any])
_DEBUG = {"on": False}


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def guarded(fn: F) -> F:
    """Turn the testbed's errors into one line and an exit code; keep tracebacks for --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TestbedError as exc:
            if _DEBUG["on"]:
                raise
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # a bug: say so plainly, keep the details for --debug
            if _DEBUG["on"]:
                raise
            raise fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)", 1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks and debug logs")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress to stderr")] = False,
) -> None:
    _DEBUG["on"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)  # the run log in the run directory keeps INFO regardless
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[console])
    for noisy in ("amqtt", "transitions", "qiskit", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


ScenarioArg = Annotated[Path, typer.Argument(help="scenario YAML file", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a scenario key: --set federation.rounds=5 (repeatable)"),
]


@app.command()
@guarded
def validate(file: ScenarioArg, set_: SetOpt = None) -> None:
    """Check a scenario file; print its resolved form."""
    from scenarios.schema import load_scenario

    scenario = load_scenario(file, set_ or [])
    fed = scenario.federation
    typer.echo(
        f"{file}: ok ({scenario.name}: {fed.hmus} HMUs, {fed.clients_per_round} per round, "
        f"{fed.rounds} rounds, seed {scenario.seed})"
    )


@app.command()
@guarded
def run(
    file: ScenarioArg,
    out: Annotated[Path, typer.Option("--out", help="parent folder of run directories")] = Path("runs"),
    set_: SetOpt = None,
    processes: Annotated[bool, typer.Option("--processes", help="one OS process per HMU")] = False,
) -> None:
    """Run a scenario end to end: broker, server and HMUs; write a run directory."""
    from scenarios.launcher import launch
    from scenarios.progress import RunProgress, final_table
    from scenarios.schema import load_scenario

    scenario = load_scenario(file, set_ or [])
    with RunProgress(scenario.name, scenario.federation.rounds) as progress:
        output = asyncio.run(
            launch(
                scenario, out, processes=processes,
                on_round=progress.round_done, on_start=progress.start,
            )
        )
    final_table(output.results, output.run_dir)
    if not output.results["completed"]:
        raise fail(f"run ended early: {output.results['reason']}", 1)


AgentScenario = Annotated[Path, typer.Option("--scenario", help="scenario YAML file")]
RunIdOpt = Annotated[str | None, typer.Option("--run-id", help="run id shared by every agent")]
UrlOpt = Annotated[str | None, typer.Option("--broker-url", help="mqtt://host:port or mqtts://host:port")]
CredsOpt = Annotated[Path | None, typer.Option("--credentials", help="YAML {agent_id: password}")]
CaOpt = Annotated[Path | None, typer.Option("--ca-file", help="CA certificate for mqtts://")]
EnrolOpt = Annotated[
    Path | None, typer.Option("--enrolment", help="YAML {hmu_id: hex secret}, needed with QKD")
]


@app.command()
@guarded
def server(
    scenario_file: AgentScenario,
    run_id: RunIdOpt = None,
    broker_url: UrlOpt = None,
    credentials: CredsOpt = None,
    ca_file: CaOpt = None,
    enrolment: EnrolOpt = None,
    out: Annotated[Path, typer.Option("--out", help="parent folder of run directories")] = Path("runs"),
    set_: SetOpt = None,
) -> None:
    """Run the FL server alone against a broker (field trials)."""
    from scenarios.agents import run_server_alone
    from scenarios.schema import load_scenario

    scenario = load_scenario(scenario_file, set_ or [])
    results = asyncio.run(
        run_server_alone(scenario, run_id, broker_url, credentials, ca_file, out, enrolment)
    )
    typer.echo(f"server: {results['reason']}; accuracy {results['final'].get('accuracy', 0):.4f}")


@app.command()
@guarded
def hmu(
    id_: Annotated[str, typer.Option("--id", help="this HMU's id, e.g. hmu-01")],
    scenario_file: AgentScenario,
    run_id: RunIdOpt = None,
    broker_url: UrlOpt = None,
    credentials: CredsOpt = None,
    ca_file: CaOpt = None,
    enrolment: EnrolOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run one HMU alone against a broker (what a Raspberry Pi runs)."""
    from scenarios.agents import run_hmu_alone
    from scenarios.schema import load_scenario

    scenario = load_scenario(scenario_file, set_ or [])
    outcome = asyncio.run(
        run_hmu_alone(scenario, id_, run_id, broker_url, credentials, ca_file, enrolment)
    )
    typer.echo(f"{outcome.hmu_id}: trained {outcome.rounds_trained} rounds; {outcome.reason}")


qkd_app = typer.Typer(no_args_is_help=True, help="B92 quantum key distribution.")
app.add_typer(qkd_app, name="qkd")


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

    from iomt_testbed.errors import UsageError
    from qkd_channel.eve import EVE_MODELS
    from qkd_channel.simulation import simulate

    if eve is not None and eve not in EVE_MODELS:
        raise UsageError(f"--eve {eve}: choose one of {', '.join(EVE_MODELS)}")
    if backend not in ("numpy", "qiskit"):
        raise UsageError(f"--backend {backend}: choose numpy or qiskit")
    result = simulate(
        qubits, eve_model=eve, eve_fraction=eve_fraction, length_km=length_km,
        backend=backend, seed=seed,  # type: ignore[arg-type]
    )
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for key, value in result.items():
            typer.echo(f"{key:>16}: {value}")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
