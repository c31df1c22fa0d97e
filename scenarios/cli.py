"""The ``iomt`` command line: validate and run scenarios, or run one agent against a broker.

Exit codes: 0 success, 2 invalid scenario or usage, 1 run failure.  Errors print one
line (``--debug`` shows the traceback).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from iomt.errors import IncompleteRun
from iomt.scenarios.cli_attack import attack_app
from iomt.scenarios.cli_qkd import qkd_app
from iomt.scenarios.cli_support import DEBUGGING, guarded
from iomt.scenarios.cli_traffic import data_app, traffic_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="iomt-testbed: federated intrusion detection for medical IoT over MQTT.",
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks and debug logs")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log progress to stderr")
    ] = False,
) -> None:
    DEBUGGING.set(debug)
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)  # the run log in the run directory keeps INFO regardless
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    # paho (and asyncio, for callbacks on the dead socket) log a dropped connection as
    # errors; the bus reconnects or ends the run in one line, and run.log keeps them all
    console.addFilter(lambda record: record.name not in ("mqtt", "asyncio") or debug)
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
    """Check a scenario file (every point of a sweep file); print what it runs."""
    from iomt.scenarios.schema import load_points

    for scenario in load_points(file, set_ or []):
        fed = scenario.federation
        typer.echo(
            f"{file}: ok ({scenario.name}: {fed.hmus} HMUs, {fed.clients_per_round} per round, "
            f"{fed.rounds} rounds, seed {scenario.seed})"
        )


ResumeOpt = Annotated[
    Path | None,
    typer.Option("--resume", help="continue this unfinished run directory from its checkpoint"),
]


@app.command()
@guarded
def run(
    file: Annotated[
        Path | None, typer.Argument(help="scenario YAML file (not with --resume)")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="parent folder of run directories")] = Path(
        "runs"
    ),
    set_: SetOpt = None,
    processes: Annotated[bool, typer.Option("--processes", help="one OS process per HMU")] = False,
    resume: ResumeOpt = None,
    executor: Annotated[
        str,
        typer.Option("--executor", help="where HMUs run: in-process, processes or ray"),
    ] = "in-process",
    address: Annotated[
        str | None, typer.Option("--address", help="--executor ray: the cluster (default auto)")
    ] = None,
) -> None:
    """Run a scenario end to end: broker, server and HMUs; write a run directory."""
    from iomt.errors import UsageError
    from iomt.scenarios.launcher import launch
    from iomt.scenarios.progress import RunProgress, final_table
    from iomt.scenarios.schema import load_scenario

    if (file is None) == (resume is None):
        raise UsageError("give a scenario file, or --resume RUN_DIR (its scenario.yaml is used)")
    if resume is not None and set_:
        raise UsageError("--set cannot change a run being resumed")
    if executor not in ("in-process", "processes", "ray"):
        raise UsageError(f"--executor {executor}: choose in-process, processes or ray")
    if address is not None and executor != "ray":
        raise UsageError("--address is the Ray cluster of --executor ray")
    processes = processes or executor == "processes"
    ray_address = (address or "auto") if executor == "ray" else None
    scenario = load_scenario(file or resume / "scenario.yaml", set_ or [])  # type: ignore[operator]
    with RunProgress(scenario.name, scenario.federation.rounds) as progress:
        output = asyncio.run(
            launch(
                scenario,
                out,
                processes=processes,
                on_round=progress.round_done,
                on_start=progress.start,
                resume=resume,
                ray_address=ray_address,
            )
        )
    final_table(output.results, output.run_dir)
    if not output.results["completed"]:
        reason = output.results["reason"]
        raise IncompleteRun(f"run not completed: {reason} (see {output.run_dir / 'results.json'})")


@app.command()
@guarded
def compare(
    files: Annotated[list[Path], typer.Argument(help="scenario YAML files, sweep files too")],
    seeds: Annotated[
        int, typer.Option("--seeds", min=1, help="runs per scenario (seeds 1..N)")
    ] = 5,
    out: Annotated[Path, typer.Option("--out", help="folder for runs and the table")] = Path(
        "runs/compare"
    ),
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="name of the clean scenario: adds poison resilience"),
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Run scenarios (each point of a sweep file) over several seeds; write mean ± std as
    Markdown, CSV and PNG."""
    from iomt.errors import IncompleteRun, Interrupted, UsageError
    from iomt.scenarios import compare as cmp
    from iomt.scenarios.compare_runs import incomplete, jobs, run_jobs
    from iomt.scenarios.progress import SweepProgress
    from iomt.scenarios.schema import load_points

    # validate every point of every file before running any
    scenarios = [s for f in files for s in load_points(f, set_ or [])]
    names = [s.name for s in scenarios]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"scenario names must differ to be compared: {', '.join(twice)}")
    if baseline is not None and baseline not in names:
        raise UsageError(f"--baseline {baseline}: not among the scenarios ({', '.join(names)})")
    out.mkdir(parents=True, exist_ok=True)
    todo = list(jobs(scenarios, seeds, out))
    with SweepProgress(len(todo)) as progress:
        try:
            runs = run_jobs(todo, progress)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted after {progress.done} of {len(todo)} runs; they are kept in {out}: "
                "run the same command again to do only the rest"
            ) from None
    clean = runs[baseline] if baseline is not None else None
    rows = [cmp.summarise(n, range(1, seeds + 1), runs[n], clean) for n in names]
    for writer, name in ((cmp.write_markdown, "compare.md"), (cmp.write_csv, "compare.csv"),
                         (cmp.write_plot, "compare.png")):  # fmt: skip
        typer.echo(f"wrote {writer(rows, out / name)}")
    typer.echo((out / "compare.md").read_text())
    failed = incomplete(runs)
    if failed:
        raise IncompleteRun(f"{len(failed)} runs did not complete ({', '.join(failed)}); "
                            f"their results.json under {out} say why")  # fmt: skip


@app.command()
@guarded
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (holds results.json)")],
) -> None:
    """Render the run's HTML report and PNG plots (also written at the end of every run)."""
    from iomt.monitoring.report import render_report

    typer.echo(f"report: {render_report(run_dir)}")


AgentScenario = Annotated[Path, typer.Option("--scenario", help="scenario YAML file")]
RunIdOpt = Annotated[str | None, typer.Option("--run-id", help="run id shared by every agent")]
UrlOpt = Annotated[
    str | None, typer.Option("--broker-url", help="mqtt://host:port or mqtts://host:port")
]
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
    out: Annotated[Path, typer.Option("--out", help="parent folder of run directories")] = Path(
        "runs"
    ),
    set_: SetOpt = None,
    resume: ResumeOpt = None,
) -> None:
    """Run the FL server alone against a broker (field trials)."""
    from iomt.scenarios.agents import run_server_alone
    from iomt.scenarios.schema import load_scenario

    scenario = load_scenario(scenario_file, set_ or [])
    results = asyncio.run(
        run_server_alone(scenario, run_id, broker_url, credentials, ca_file, out, enrolment, resume)
    )
    if not results["completed"]:
        raise IncompleteRun(f"run not completed: {results['reason']}")
    typer.echo(f"server: {results['reason']}; accuracy {results['final'].get('accuracy', 0):.4f}")


@app.command()
@guarded
def hmu(
    scenario_file: AgentScenario,
    id_: Annotated[str | None, typer.Option("--id", help="this HMU's id, e.g. hmu-01")] = None,
    ids: Annotated[
        str | None,
        typer.Option("--ids", help="several HMUs in this process: hmu-01..hmu-20,hmu-25"),
    ] = None,
    run_id: RunIdOpt = None,
    broker_url: UrlOpt = None,
    credentials: CredsOpt = None,
    ca_file: CaOpt = None,
    enrolment: EnrolOpt = None,
    set_: SetOpt = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="keep the state carried between rounds here, to resume"),
    ] = None,
) -> None:
    """Run HMUs against a broker: one (what a Raspberry Pi runs) or, with --ids, many in
    one process sharing a training worker per core (one command per machine of a trial)."""
    from iomt.errors import UsageError
    from iomt.scenarios.agents import pick_hmus, run_hmus_alone
    from iomt.scenarios.schema import load_scenario

    if (id_ is None) == (ids is None):
        raise UsageError("give --id HMU or --ids HMU,FIRST..LAST (one of them)")
    scenario = load_scenario(scenario_file, set_ or [])
    hmus = [id_] if id_ is not None else pick_hmus(ids or "", scenario.hmu_ids)
    outcomes = asyncio.run(
        run_hmus_alone(
            scenario, hmus, run_id, broker_url, credentials, ca_file, enrolment, state_dir
        )  # fmt: skip
    )
    for outcome in outcomes:
        typer.echo(f"{outcome.hmu_id}: trained {outcome.rounds_trained} rounds; {outcome.reason}")
        if outcome.detection is not None:
            d = outcome.detection
            median = "-" if d["latency_ms_p50"] is None else f"{d['latency_ms_p50']:.2f} ms"
            typer.echo(
                f"{outcome.hmu_id}: detection on {d['iface']}: {d['scored']} flows scored,"
                f" {d['alerts']} alerts, {d['unscored']} before a model; latency median {median}"
            )


@app.command("field-kit")
@guarded
def field_kit(
    scenario_file: AgentScenario,
    hmus: Annotated[str, typer.Option("--hmus", help="the trial's HMUs: hmu-01..hmu-03")],
    broker_host: Annotated[
        str, typer.Option("--broker-host", help="name or address of the broker host")
    ],
    out: Annotated[Path, typer.Option("--out", help="the kit's directory")],
    run_id: RunIdOpt = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8883,
    prefix: Annotated[Path, typer.Option("--prefix", help="where the kit is installed")] = Path(
        "/etc/iomt"
    ),
    python: Annotated[str, typer.Option("--python", help="the agents' Python")] = (
        "/opt/iomt/venv/bin/python"
    ),
    set_: SetOpt = None,
) -> None:
    """Write a field trial's kit: TLS broker config, credentials, ACL, CA, per-device
    secrets and systemd units, and a Raspberry Pi install script (see KIT/README.txt)."""
    from iomt.scenarios.agents import field_ready, pick_hmus
    from iomt.scenarios.field_kit import KitSettings, write_kit
    from iomt.scenarios.schema import load_scenario

    scenario = load_scenario(scenario_file, set_ or [])
    field_ready(scenario)
    chosen = pick_hmus(hmus, scenario.hmu_ids)
    settings = KitSettings(run_id or scenario.name, broker_host, port, prefix=prefix,
                           python=python)  # fmt: skip
    kit = write_kit(scenario, chosen, out, settings)
    typer.echo(f"field kit for {len(chosen)} HMUs, broker {settings.url}: {kit} (see README.txt)")


@app.command()
@guarded
def schema(
    out: Annotated[
        Path | None, typer.Option("--out", help="write it to this file instead of stdout")
    ] = None,
) -> None:
    """Print the JSON Schema of a scenario file (for editors: see the README)."""
    from iomt.scenarios.json_schema import schema_text

    if out is None:
        typer.echo(schema_text(), nl=False)
    else:
        out.write_text(schema_text(), encoding="utf-8")
        typer.echo(f"wrote {out}")


app.add_typer(qkd_app, name="qkd")
app.add_typer(attack_app, name="attack")
app.add_typer(traffic_app, name="traffic")
app.add_typer(data_app, name="data")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
