"""``iomt attack``: the privacy attacks of ``iomt.adversary`` run on a finished run.

The attacker is the curious server: it holds what ``privacy_audit: true`` kept (each
round's global model and every update as the server read it, ``server_agent.audit``)
and the final global model.  The ground truth (each HMU's records, the held-out ones)
is the experimenter's: it is rebuilt from the run's ``scenario.yaml`` and seed.

Inversion of a real local update (E epochs over the HMU's whole share) rebuilds
``rows`` records from the direction of the update; the attacker is given their labels,
drawn from the HMU's share.  Each rebuilt row is paired with a distinct record of the
share (the pairing most favourable to the attacker), and the same rows are paired with
held-out records as a control: what the score is when the rows carry nothing of the
HMU.  Under CKKS the server reads only the aggregate: that is what is attacked.

Membership inference probes the final global model and the HMU's model as the server
read it in the last audited round; members are records of the HMU's share,
non-members a random half of the held-out split (of the same class ratio), and the
shadow models train on the other half with the run's training settings (one local
training from a fresh model).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from iomt.errors import UsageError
from iomt.server_agent import audit


def _check_run_dir(run_dir: Path) -> None:
    if not (run_dir / "scenario.yaml").is_file():
        raise UsageError(
            f"{run_dir}: not a run directory (no scenario.yaml); give one of `iomt run`"
        )


def run_data(run_dir: Path):
    """The run's scenario and its data, split as the run split it (the dataset it used
    is read from results.json when the scenario left it to IOMT_DATASET)."""
    import json

    from iomt.scenarios.data_plan import prepare_data
    from iomt.scenarios.schema import load_scenario

    overrides = []
    results = run_dir / "results.json"
    if results.is_file():
        used = json.loads(results.read_text()).get("data", {})
        if used.get("dataset") and not used.get("synthetic"):
            overrides.append(f"data.dataset={used['dataset']}")
    scenario = load_scenario(run_dir / "scenario.yaml", overrides)
    return scenario, prepare_data(scenario)


def inversion(
    run_dir: Path,
    hmu: str,
    round_: int,
    *,
    rows: int = 16,
    method: str = "cosine",
    steps: int = 2000,
    restarts: int = 1,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Rebuild ``rows`` of ``hmu``'s records from its round-``round_`` update (the best of
    ``restarts`` random starts)."""
    from iomt.adversary import inversion as inv

    _check_run_dir(run_dir)
    base, seen = audit.read_round(run_dir, round_)
    scenario, data = run_data(run_dir)
    if hmu not in data.parts:
        raise UsageError(f"--hmu {hmu}: no such HMU in {run_dir} ({', '.join(data.parts)})")
    target = hmu if hmu in seen else audit.AGGREGATE if audit.AGGREGATE in seen else None
    if target is None:
        raise UsageError(
            f"--hmu {hmu}: the server read no update of it in round {round_}"
            f" (it read {', '.join(sorted(seen))})"
        )
    x, y = data.parts[hmu]
    rng = np.random.default_rng([seed, round_])
    labels = y[rng.choice(len(y), rows, replace=len(y) < rows)]
    direction = inv.update_direction(base, seen[target])
    result = inv.invert(
        base, direction, rows, labels=labels, method=method, steps=steps, seed=seed,
        restarts=restarts, progress=progress,
    )  # fmt: skip
    control_rows, _ = held_out_halves(data.y_test, seed)
    member = inv.score(result.rows, x)
    control = inv.score(result.rows, data.x_test[control_rows])
    return {
        "run": str(run_dir),
        "hmu": hmu,
        "round": round_,
        "attacked": "its update" if target == hmu else "the decrypted aggregate (CKKS)",
        "update_encryption": scenario.update_encryption.kind,
        "privacy": scenario.privacy.mechanism,
        "method": method,
        "rows": rows,
        "steps": result.steps,
        "restarts": restarts,
        "distance": result.distance,
        "against_its_records": _summary(member),
        "against_held_out_records": _summary(control),
    }


def held_out_halves(y_test: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows in two random halves of the same class ratio (the split keeps
    the dataset's row order, which is not random: attacks come in runs)."""
    from iomt.fedlearn.partition import stratified_split

    return stratified_split(y_test, 0.5, np.random.default_rng([seed, 0x4A1F]))


def _summary(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in scores.items() if k != "r2_per_feature"}


def membership(run_dir: Path, hmu: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Both attacks against the final global model and ``hmu``'s model as read."""
    from iomt.adversary import membership as mia
    from iomt.fedlearn.model import init_weights
    from iomt.fedlearn.train import train_local
    from iomt.server_agent.checkpoint import read_checkpoint

    _check_run_dir(run_dir)
    scenario, data = run_data(run_dir)
    hmu = hmu or scenario.hmu_ids[0]
    if hmu not in data.parts:
        raise UsageError(f"--hmu {hmu}: no such HMU in {run_dir} ({', '.join(data.parts)})")
    targets = {"global model": read_checkpoint(run_dir).weights}
    kept = audit.rounds_kept(run_dir)
    if kept:
        _, seen = audit.read_round(run_dir, kept[-1])
        if hmu in seen:
            targets[f"{hmu} as read, round {kept[-1]}"] = seen[hmu]
    out_rows, shadow_rows = held_out_halves(data.y_test, seed)
    outside = (data.x_test[out_rows], data.y_test[out_rows])
    shadow = (data.x_test[shadow_rows], data.y_test[shadow_rows])
    rng = np.random.default_rng(seed)
    x, y, is_member = mia.balanced(data.parts[hmu], outside, rng)
    training = scenario.training

    def train(sx: np.ndarray, sy: np.ndarray, s: int):
        start = init_weights(data.n_features, training.hidden, s)
        return train_local(start, sx, sy, training, s).weights

    rows = []
    for name, weights in targets.items():
        train_loss = float(mia.record_losses(weights, *data.parts[hmu]).mean())
        for attack, result in (
            ("loss threshold", mia.loss_threshold(weights, x, y, is_member, train_loss)),
            ("shadow models", mia.shadow_attack(weights, x, y, is_member, shadow, train,
                                                seed=seed)),
        ):  # fmt: skip
            rows.append({"target": name, "attack": attack, **result.as_dict()})
    return {"run": str(run_dir), "hmu": hmu, "results": rows}
