"""SAFE-MED's table T4: gradient inversion (SSIM, PSNR) and membership inference for
FedAvg, DP only, HE + DP, SAFE-MED's pipeline and the QKD-keyed cipher.

Each method is a point of ``scenarios/safemed/methods.yaml`` without attackers (HE + DP
is its ``fl-he`` point with the ``fl-dp`` point's Gaussian DP), run over the launcher's
Mosquitto with ``privacy_audit: true`` (K = 20, 30 rounds), seeds 1..N.  Then, as the
threat model gives each attacker its view:

* inversion of one single-step gradient of batch 1, 8 and 16 (SAFE-MED's batch) of
  the victim HMU (``hmu-02``) at the final global model: FedAvg's server reads it in
  clear; under DP it reads it noised as the HMU would noise it; under HE + DP it reads
  only the sum of the 20 HMUs' noised gradients; under the neural ciphers the attacker
  is the fresh insider (``iomt.fedlearn.cipher_enrolment``'s), who rebuilds the
  gradient from its ciphertext (keyed: without the victim's key) and inverts that;
* inversion of the victim's real update of the last round (``iomt attack inversion``);
* membership inference on the final global model (``iomt attack mia``).

SSIM and PSNR of rebuilt rows paired with the victim's records (``iomt.adversary.
inversion.score``); MIA: the better of the loss-threshold and shadow-model attacks.

Run: ``.venv/bin/python -m bench.privacy_attacks [--seeds 5] [--rounds 30] [--methods ...]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import numpy as np

from bench.inprocess import default_dataset
from iomt.adversary import inversion as inv
from iomt.fedlearn import neural_cipher as nc
from iomt.fedlearn.privacy import privatize_update
from iomt.scenarios.attack_runs import inversion, membership
from iomt.scenarios.data_plan import prepare_data
from iomt.scenarios.launcher import launch
from iomt.scenarios.schema import load_points
from iomt.scenarios.setups import make_cipher
from iomt.server_agent.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"FedAvg": "fedavg", "DP only": "fl-dp", "HE + DP": "fl-he", "SAFE-MED": "safemed",
           "QKD-keyed cipher": "keyed"}  # fmt: skip
VICTIM = "hmu-02"
BATCHES = (1, 8, 16)
STEPS = 1500


def scenarios(seed: int, rounds: int) -> dict:
    sets = [f"seed={seed}", f"federation.rounds={rounds}", f"data.dataset={default_dataset()}",
            "privacy_audit=true", "metrics.resources_interval_s=0"]  # fmt: skip
    points = {p.name: p for p in load_points(ROOT / "scenarios/safemed/methods.yaml", sets)}
    out = {label: points[f"t1-{v}-0"] for label, v in METHODS.items()}
    out["HE + DP"] = out["HE + DP"].model_copy(update={"privacy": points["t1-fl-dp-0"].privacy})
    return out


def seen_gradients(scenario, data, weights, batch: int, rng) -> tuple[np.ndarray, ...]:
    """The victim's records and labels, its true gradient and what the attacker reads."""
    x, y = data.parts[VICTIM]
    pick = rng.choice(len(x), batch, replace=False)
    gradient = inv.batch_gradient(weights, x[pick], y[pick])
    noised = privatize_update(gradient, scenario.privacy, rng)
    if scenario.update_encryption.kind == "ckks":  # the server reads the sum only
        for hmu, (hx, hy) in data.parts.items():
            if hmu != VICTIM:
                other = rng.choice(len(hx), batch, replace=False)
                noised = noised + privatize_update(
                    inv.batch_gradient(weights, hx[other], hy[other]), scenario.privacy, rng
                )
    return x[pick], y[pick], gradient, noised


def insider_view(enrolled, sent: np.ndarray, rng) -> np.ndarray:
    """What the fresh insider attacker rebuilds of ``sent`` from its ciphertext."""
    cfg = enrolled.nets.cfg
    own = nc.random_blocks(cfg.train_blocks, rng)
    keys = nc.random_keys(len(own), cfg.key_bits, rng) if cfg.keyed else None
    attacker = nc.train_attacker(cfg, enrolled.nets.encode(own, keys), own, seed=7)
    blocks, scales = nc.to_blocks(sent)
    victim_key = nc.random_keys(1, cfg.key_bits, rng) if cfg.keyed else None
    rebuilt = nc.attack(attacker, enrolled.nets.encode(blocks, victim_key))
    return nc.from_blocks(rebuilt, scales, sent.size)


def one_seed(seed: int, rounds: int, out: Path, methods) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for label, scenario in scenarios(seed, rounds).items():
        if label not in methods:
            continue
        run_dir = asyncio.run(launch(scenario, out / scenario.name)).run_dir
        data = prepare_data(scenario)
        weights = read_checkpoint(run_dir).weights
        enrolled = make_cipher(scenario)  # the run's own, from the cache
        rng = np.random.default_rng([seed, 0x74])
        row: dict[str, float] = {}
        for batch in BATCHES:
            x, y, _, seen = seen_gradients(scenario, data, weights, batch, rng)
            if enrolled is not None:
                seen = insider_view(enrolled, seen.astype(np.float32), rng)
            rebuilt = inv.invert(weights, seen, batch, labels=y, steps=STEPS, seed=seed)
            scores = inv.score(rebuilt.rows, x)
            row[f"ssim_b{batch}"], row[f"psnr_b{batch}"] = scores["ssim"], scores["psnr"]
        update = inversion(run_dir, VICTIM, rounds, rows=16, steps=STEPS, seed=seed)
        row["ssim_update"] = update["against_its_records"]["ssim"]
        row["ssim_update_control"] = update["against_held_out_records"]["ssim"]
        mia = [
            r for r in membership(run_dir, VICTIM, seed)["results"] if r["target"] == "global model"
        ]
        best = max(mia, key=lambda r: r["auc"])
        row["mia_accuracy"], row["mia_auc"], row["mia_tpr"] = (
            best["balanced_accuracy"], best["auc"], best["tpr_at_1pct_fpr"])  # fmt: skip
        figures[label] = row
        print(f"  seed {seed}, {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()),
              flush=True)  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    args = parser.parse_args()
    per_seed = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            per_seed.append(one_seed(seed, args.rounds, Path(tmp), args.methods))

    def cell(label: str, key: str) -> str:
        values = [s[label][key] for s in per_seed]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.3f} ± {spread:.3f}"

    print(f"\nT4, victim {VICTIM}, seeds 1-{args.seeds}, {args.rounds} rounds; inversion "
          f"{STEPS} steps (Inverting Gradients, labels given)")  # fmt: skip
    keys = [f"ssim_b{b}" for b in BATCHES] + [f"psnr_b{b}" for b in BATCHES] + [
        "ssim_update", "ssim_update_control", "mia_accuracy", "mia_auc", "mia_tpr"]  # fmt: skip
    print("| method | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for label in args.methods:
        print(f"| {label} | " + " | ".join(cell(label, k) for k in keys) + " |")


if __name__ == "__main__":
    main()
