"""``iomt qkd``: B92 key distribution from the command line, one session or a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from iomt.scenarios.cli_support import guarded

if TYPE_CHECKING:
    from iomt.qkd_channel.config import QkdConfig
    from iomt.qkd_channel.link_sweep import SweepPoint

qkd_app = typer.Typer(no_args_is_help=True, help="B92 quantum key distribution.")

EveOpt = Annotated[
    str | None,
    typer.Option("--eve", help="intercept-resend | intercept-resend-b92 | helstrom | usd"),
]
EveFractionOpt = Annotated[
    float, typer.Option("--eve-fraction", min=0.0, max=1.0, help="share of qubits attacked")
]
ScenarioOpt = Annotated[
    Path | None,
    typer.Option("--scenario", help="take the link from this scenario's qkd section"),
]
DbOpt = Annotated[
    float | None, typer.Option("--db-per-km", min=0.0, max=10.0, help="fibre loss (dB/km)")
]
EtaOpt = Annotated[
    float | None,
    typer.Option("--detector-efficiency", min=0.0, max=1.0, help="Bob's detector efficiency"),
]
DarkOpt = Annotated[
    float | None,
    typer.Option("--dark-count", min=0.0, max=0.999999, help="dark-count probability per slot"),
]
DepolOpt = Annotated[
    float | None,
    typer.Option("--depolarising", min=0.0, max=1.0, help="depolarising probability of the link"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def link_config(scenario: Path | None, **link: float | None) -> QkdConfig:
    """The scenario's ``qkd`` section (or the defaults) with the options given on top."""
    from pydantic import ValidationError

    from iomt.errors import UsageError
    from iomt.qkd_channel.config import QkdConfig
    from iomt.scenarios.schema import load_scenario

    base = load_scenario(scenario).qkd if scenario is not None else QkdConfig()
    given = {key: value for key, value in link.items() if value is not None}
    try:
        return QkdConfig.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"qkd.{first['loc'][0]}: {first['msg']}") from None


def check_eve(eve: str | None) -> None:
    from iomt.errors import UsageError
    from iomt.qkd_channel.eve import EVE_MODELS

    if eve is not None and eve not in EVE_MODELS:
        raise UsageError(f"--eve {eve}: choose one of {', '.join(EVE_MODELS)}")


@qkd_app.command("simulate")
@guarded
def qkd_simulate(
    qubits: Annotated[int, typer.Option("--qubits", min=64, help="qubits Alice sends")],
    seed: Annotated[int, typer.Option("--seed", help="random seed")],
    eve: EveOpt = None,
    eve_fraction: EveFractionOpt = 1.0,
    length_km: Annotated[
        float | None, typer.Option("--length-km", min=0.0, help="fibre length [default: 10]")
    ] = None,
    db_per_km: DbOpt = None,
    detector_efficiency: EtaOpt = None,
    dark_count: DarkOpt = None,
    depolarising: DepolOpt = None,
    scenario: ScenarioOpt = None,
    backend: Annotated[str, typer.Option("--backend", help="numpy | qiskit")] = "numpy",
    as_json: JsonOpt = False,
) -> None:
    """One B92 session over a simulated link; an abort is a result, not an error."""
    import json

    from iomt.errors import UsageError
    from iomt.qkd_channel.simulation import simulate

    check_eve(eve)
    if backend not in ("numpy", "qiskit"):
        raise UsageError(f"--backend {backend}: choose numpy or qiskit")
    cfg = link_config(
        scenario, fibre_km=length_km, db_per_km=db_per_km, dark_count_prob=dark_count,
        detector_efficiency=detector_efficiency, depolarising=depolarising,
    )  # fmt: skip
    result = simulate(
        qubits,
        eve,
        eve_fraction,
        cfg.fibre_km,
        backend,
        seed,
        cfg,  # type: ignore[arg-type]
    )
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for key, value in result.items():
            typer.echo(f"{key:>16}: {value}")


@qkd_app.command("sweep")
@guarded
def qkd_sweep(
    eve: EveOpt = None,
    fraction: Annotated[
        str | None, typer.Option("--fraction", help="Eve's share of qubits, START:STOP:STEP")
    ] = None,
    length_km: Annotated[
        str | None, typer.Option("--length-km", help="fibre lengths, START:STOP:STEP")
    ] = None,
    eve_fraction: EveFractionOpt = 1.0,
    qubits: Annotated[int, typer.Option("--qubits", min=64, help="qubits per point")] = 2**16,
    seed: Annotated[int, typer.Option("--seed", help="seed of the first point")] = 1,
    db_per_km: DbOpt = None,
    detector_efficiency: EtaOpt = None,
    dark_count: DarkOpt = None,
    depolarising: DepolOpt = None,
    scenario: ScenarioOpt = None,
    out: Annotated[Path, typer.Option("--out", help="PNG of the sweep")] = Path("qkd-sweep.png"),
    as_json: JsonOpt = False,
) -> None:
    """Conclusive rate and QBER against Eve's fraction or the fibre's length, beside
    B92's theory for the link, each point with its 95 % binomial interval."""
    import json

    from iomt.errors import UsageError
    from iomt.qkd_channel.link_sweep import parse_range, sweep

    check_eve(eve)
    if (fraction is None) == (length_km is None):
        raise UsageError("give one of --fraction or --length-km")
    axis = "fraction" if fraction is not None else "length_km"
    values = parse_range(fraction or length_km or "", f"--{axis.replace('_', '-')}")
    cfg = link_config(
        scenario, db_per_km=db_per_km, dark_count_prob=dark_count,
        detector_efficiency=detector_efficiency, depolarising=depolarising,
    )  # fmt: skip
    points = sweep(
        cfg, axis, values, eve_model=eve, eve_fraction=eve_fraction, qubits=qubits, seed=seed
    )
    write_sweep_plot(points, axis, eve, out)
    if as_json:
        typer.echo(json.dumps({"axis": axis, "eve": eve, "points": [p.as_dict() for p in points]}))
        return
    typer.echo(f"{axis:>10}  conclusive [95 % CI]        theory   QBER [95 % CI]            theory")
    for p in points:
        qber = (
            "no sample" if p.qber is None else f"{p.qber:.4f} [{p.qber_low:.4f}, {p.qber_high:.4f}]"
        )
        typer.echo(
            f"{p.x:>10g}  {p.conclusive_rate:.4f} [{p.conclusive_low:.4f}, {p.conclusive_high:.4f}]"
            f"  {p.theory_conclusive:.4f}   {qber:<25} {p.theory_qber:.4f}"
        )
    typer.echo(f"plot: {out}")


def write_sweep_plot(points: list[SweepPoint], axis: str, eve: str | None, path: Path) -> None:
    """Two panels, conclusive rate and QBER: points with interval bars, theory as a line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    xs = [p.x for p in points]
    label = "Eve's share of qubits" if axis == "fraction" else "fibre length (km)"
    panels: list[tuple[str, list[Any], list[Any], list[Any], list[float]]] = [
        ("conclusive rate", [p.conclusive_rate for p in points], [p.conclusive_low for p in points],
         [p.conclusive_high for p in points], [p.theory_conclusive for p in points]),
        ("QBER", [p.qber for p in points], [p.qber_low for p in points],
         [p.qber_high for p in points], [p.theory_qber for p in points]),
    ]  # fmt: skip
    for i, (name, values, lows, highs, theory) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.plot(xs, theory, color="0.3", label="B92 theory")
        shown = [j for j, v in enumerate(values) if v is not None]
        ax.errorbar(
            [xs[j] for j in shown], [values[j] for j in shown],
            yerr=[[values[j] - lows[j] for j in shown], [highs[j] - values[j] for j in shown]],
            fmt="o", color="tab:red", capsize=3, label="simulated, 95 % CI",
        )  # fmt: skip
        ax.set_xlabel(label)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"B92, Eve: {eve or 'none'}", fontsize=10)
    fig.savefig(path, dpi=120)
