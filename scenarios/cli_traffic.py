"""``iomt traffic`` and ``iomt data``: build, replay and measure traffic; fetch the dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from iomt.scenarios.cli_support import guarded
from iomt.wire.topics import hmu_ids

traffic_app = typer.Typer(no_args_is_help=True, help="WUSTL-EHMS flows as packets and back.")
data_app = typer.Typer(no_args_is_help=True, help="The WUSTL-EHMS-2020 dataset.")

DatasetOpt = Annotated[Path, typer.Option("--dataset", help="WUSTL-EHMS-2020 CSV")]


@traffic_app.command("build")
@guarded
def build(
    dataset: DatasetOpt,
    hmus: Annotated[int, typer.Option("--hmus", min=1, help="number of HMUs")],
    out: Annotated[Path, typer.Option("--out", help="folder for the pcaps (also the cache)")],
    partition: Annotated[str, typer.Option("--partition", help="iid | dirichlet | time")] = "iid",
    alpha: Annotated[float, typer.Option("--alpha", help="Dirichlet concentration")] = 0.5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    test_fraction: Annotated[float, typer.Option("--test-fraction")] = 0.2,
) -> None:
    """One pcap per HMU (and test.pcap for the held-out split), each with ground truth."""
    from iomt.errors import UsageError
    from iomt.scenarios.data_plan import split_and_partition
    from iomt.scenarios.schema import validate_scenario
    from iomt.traffic.captures import build_captures
    from iomt.traffic.dataset import flow_table, read_wustl_csv
    from iomt.traffic.synthesis import SynthesisConfig

    if partition not in ("iid", "dirichlet", "time"):
        raise UsageError(f"--partition {partition}: choose iid, dirichlet or time")
    scenario = validate_scenario(
        {
            "name": "traffic-build",
            "seed": seed,
            "federation": {
                "hmus": hmus,
                "clients_per_round": hmus,
                "test_fraction": test_fraction,
                "partition": {"kind": partition, "alpha": alpha},
            },
        },
        source="options",
    )
    labels = flow_table(read_wustl_csv(dataset)).y
    shares, test_idx = split_and_partition(scenario, labels)
    names = [*hmu_ids(hmus), "test"]
    captures = build_captures(dataset, [*shares, test_idx], out, SynthesisConfig(seed=seed), names)
    state = "cached" if captures.cache_hit else f"built in {captures.seconds:.1f} s"
    typer.echo(f"{len(captures.pcaps)} captures in {captures.root} ({state}); each has a")
    typer.echo("ground-truth sidecar (.flows.jsonl) mapping every flow to its label")
    for pcap, flows in zip(captures.pcaps, captures.flows or [None] * len(names), strict=True):
        typer.echo(f"  {pcap} ({flows} flows)")


@traffic_app.command("features")
@guarded
def features(
    pcap: Annotated[Path, typer.Argument(help="capture to measure")],
    out: Annotated[Path, typer.Option("--out", help="CSV of one row per flow")],
) -> None:
    """Assemble flows from a capture and write their Argus-like features as CSV."""
    from iomt.traffic.source import write_features_csv

    flows = write_features_csv(pcap, out)
    typer.echo(f"{flows} flows -> {out}")


@traffic_app.command("fidelity")
@guarded
def fidelity(
    dataset: DatasetOpt,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="first N records")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Rebuild records as packets, measure them back, and report agreement per feature."""
    from iomt.traffic.dataset import read_wustl_csv
    from iomt.traffic.fidelity import fidelity as measure

    report = measure(read_wustl_csv(dataset), limit)
    if as_json:
        typer.echo(json.dumps(report))
        return
    typer.echo(f"{report['records']} records, readings exact: {report['readings_exact']:.4%}")
    for name, figures in report["features"].items():  # type: ignore[union-attr]
        typer.echo(
            f"  {name:>12}: within 1 % {figures['within']:.4%}  exact {figures['exact']:.4%}"
        )
    typer.echo(f"targets met: {report['targets_met']}")


@traffic_app.command("replay")
@guarded
def replay(
    pcap: Annotated[Path, typer.Argument(help="capture to send")],
    iface: Annotated[str, typer.Option("--iface", help="network interface to send on")],
    speed: Annotated[float, typer.Option("--speed", help="timing multiplier; 0 = top speed")] = 1.0,
    max_gap: Annotated[
        float | None, typer.Option("--max-gap", help="cap each gap (seconds) before scaling")
    ] = None,
) -> None:
    """Send a capture onto an interface with its original timing (scaled by --speed)."""
    from iomt.traffic.replay import replay_command

    report = replay_command(pcap, iface, speed, max_gap)
    typer.echo(
        f"sent {report.packets} packets in {report.seconds:.2f} s on {iface} ({report.backend})"
    )


@traffic_app.command("capture")
@guarded
def capture(
    iface: Annotated[str, typer.Argument(help="interface to sniff")],
    out: Annotated[Path, typer.Option("--out", help="pcap to write")],
    truth: Annotated[
        Path | None, typer.Option("--truth", help="sidecar of the replayed capture, to label flows")
    ] = None,
    count: Annotated[int, typer.Option("--count", min=0, help="stop after N packets")] = 0,
    timeout: Annotated[float | None, typer.Option("--timeout", help="stop after S seconds")] = None,
) -> None:
    """Capture IoMT traffic live (what an HMU in a field trial trains on) into a pcap."""
    from iomt.traffic.live import capture_command

    captured = capture_command(iface, out, truth=truth, count=count, timeout_s=timeout)
    typer.echo(
        f"captured {len(captured.frames)} packets -> {out} (kernel drops {captured.dropped})"
    )


@data_app.command("fetch")
@guarded
def fetch(
    url: Annotated[str | None, typer.Option("--url", help="where to download from")] = None,
    dest: Annotated[Path | None, typer.Option("--dest", help="where to save it")] = None,
) -> None:
    """Download WUSTL-EHMS-2020 and verify its rows, labels and checksum."""
    from iomt.traffic.fetch import WUSTL_URL, default_dataset_path, fetch_dataset

    target = dest or default_dataset_path()
    report = fetch_dataset(url or WUSTL_URL, target)
    typer.echo(f"verified dataset saved to {report.path}")
    typer.echo(f"use it with: export IOMT_DATASET={report.path}")


@data_app.command("import")
@guarded
def import_(
    file: Annotated[Path, typer.Argument(help="the WUSTL-EHMS-2020 CSV you downloaded")],
    dest: Annotated[Path | None, typer.Option("--dest", help="where to install it")] = None,
) -> None:
    """Verify a WUSTL-EHMS-2020 CSV obtained by hand (rows, columns, labels, checksum)
    and install it where iomt looks for the data."""
    from iomt.traffic.fetch import default_dataset_path, import_dataset

    report = import_dataset(file, dest or default_dataset_path())
    facts = report.facts
    typer.echo(f"verified {facts.rows:,} rows ({facts.normal:,} normal, {facts.attack:,} attack),"
               f" sha256 {facts.sha256[:12]}...; installed at {report.path}")  # fmt: skip
