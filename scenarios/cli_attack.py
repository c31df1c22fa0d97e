"""``iomt attack``: privacy attacks on a finished run (``iomt.scenarios.attack_runs``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from iomt.scenarios.cli_support import guarded

attack_app = typer.Typer(no_args_is_help=True, help="Privacy attacks on a finished run.")

RunDir = Annotated[Path, typer.Argument(help="a run directory of a privacy_audit: true run")]
HmuOpt = Annotated[str | None, typer.Option("--hmu", help="the victim HMU, e.g. hmu-02")]
SeedOpt = Annotated[int, typer.Option("--seed", help="the attacker's random seed")]


def _write(run_dir: Path, name: str, report: dict[str, Any]) -> Path:
    from iomt.atomic import write_text_atomically

    folder = run_dir / "attacks"
    folder.mkdir(exist_ok=True)
    return write_text_atomically(folder / name, json.dumps(report, indent=2) + "\n")


@attack_app.command("inversion")
@guarded
def attack_inversion(
    run_dir: RunDir,
    hmu: Annotated[str, typer.Option("--hmu", help="the victim HMU, e.g. hmu-02")],
    round_: Annotated[int, typer.Option("--round", min=1, help="the round of its update")],
    rows: Annotated[int, typer.Option("--rows", min=1, max=256, help="records rebuilt")] = 16,
    method: Annotated[str, typer.Option("--method", help="cosine (Geiping) | l2 (DLG)")] = "cosine",
    steps: Annotated[int, typer.Option("--steps", min=1, help="optimisation steps")] = 2000,
    restarts: Annotated[
        int, typer.Option("--restarts", min=1, help="random starts; the best fit is kept")
    ] = 1,
    seed: SeedOpt = 0,
) -> None:
    """Rebuild an HMU's records from its update as the server read it; SSIM, PSNR, R^2."""
    from iomt.errors import UsageError
    from iomt.scenarios.attack_runs import inversion

    if method not in ("cosine", "l2"):
        raise UsageError(f"--method {method}: choose cosine or l2")

    def progress(step: int, distance: float) -> None:
        typer.echo(f"  step {step}/{steps}: gradient distance {distance:.4g}", err=True)

    report = inversion(
        run_dir, hmu, round_, rows=rows, method=method, steps=steps, restarts=restarts,
        seed=seed, progress=progress,
    )  # fmt: skip
    typer.echo(f"{hmu}, round {round_}: {report['attacked']} ({method}, {rows} rows)")
    typer.echo("| rebuilt rows paired with | SSIM | PSNR (dB) | median R^2 | data range |")
    typer.echo("|---|---|---|---|---|")
    for label, key in (("its records", "against_its_records"),
                       ("held-out records (control)", "against_held_out_records")):  # fmt: skip
        s = report[key]
        r2 = "–" if s["r2_median"] is None else f"{s['r2_median']:.3f}"
        typer.echo(
            f"| {label} | {s['ssim']:.3f} | {s['psnr']:.2f} | {r2} | {s['data_range']:.2f} |"
        )
    typer.echo(f"wrote {_write(run_dir, f'inversion-{hmu}-round-{round_}.json', report)}")


@attack_app.command("mia")
@guarded
def attack_mia(run_dir: RunDir, hmu: HmuOpt = None, seed: SeedOpt = 0) -> None:
    """Membership inference (loss threshold, shadow models) on the run's models."""
    from iomt.scenarios.attack_runs import membership

    report = membership(run_dir, hmu, seed)
    typer.echo(f"members: {report['hmu']}'s records; non-members: held-out records")
    typer.echo("| target | attack | balanced accuracy | AUC | TPR at 1 % FPR |")
    typer.echo("|---|---|---|---|---|")
    for r in report["results"]:
        typer.echo(f"| {r['target']} | {r['attack']} | {r['balanced_accuracy']:.3f} | "
                   f"{r['auc']:.3f} | {r['tpr_at_1pct_fpr']:.3f} |")  # fmt: skip
    typer.echo(f"wrote {_write(run_dir, 'mia.json', report)}")
