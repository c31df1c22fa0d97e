"""SAFE-MED's adversarial neural cipher for model updates (its section 3.3.2 and
Algorithm 1), and the same cipher keyed by a per-HMU key (after Abadi and Andersen).

Three networks, Xavier-uniform initialised:

* encoder E: a 128-value block of the update (and, keyed, ``key_bits`` key values) ->
  hidden [256, 128, 64] (``hidden``; the paper's), each Linear -> ReLU -> BatchNorm ->
  ciphertext of ``width`` values, tanh;
* decoder D: the ciphertext (and the key) -> the hidden layers reversed, Linear -> ReLU ->
  BatchNorm -> the block, linear;
* adversary A: the ciphertext only -> [256, 128], Linear -> ReLU -> Dropout -> the
  block, linear.

Training alternates, per batch of 256 (Adam, MSE): one step of E and D on
``MSE(D(E(x)), x) - adversary_weight * MSE(A(E(x)), x)`` (the minimax: reconstruct,
and make the adversary fail), then one step of A on ``MSE(A(E(x)), x)``.  Without
``adversarial`` the first loss is the reconstruction alone: NeuralCrypto-FL, and
SAFE-MED's ablation.  Training stops when the decoder's validation loss has not
improved for ``patience`` epochs, and keeps the best decoder and encoder.

An update is a vector of any length: padded with zeros and cut into 128-value blocks,
each divided by its root mean square and multiplied by ``BLOCK_RMS`` (``to_blocks``), so
every block the cipher sees has the same size whatever the model, the round or the
learning rate.  The block's RMS travels in clear beside its ciphertext (one number per
128 values): the size of each slice of the update is not hidden, its direction is.
The cipher is trained on random Gaussian blocks of that size (``random_blocks``): it
learns a code for any block, not for the updates of one model, so what it does on a
run's real updates is what it does on its training data.

Pure computation: no I/O, no randomness but the generators given.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from iomt.fedlearn.defence_config import NeuralCipherConfig
from iomt.fedlearn.model import Weights
from iomt.fedlearn.updates import apply_delta, delta, flatten, unflatten

BLOCK = 128
BLOCK_RMS = 1 / 3  # most values of a normalised block lie in [-1, 1]


def _mlp(sizes: list[int], out: int, *, norm: bool, dropout: float = 0.0) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.BatchNorm1d(b) if norm else nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-1], out))
    return layers


def _xavier(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


@dataclass
class CipherNets:
    """The three networks of one cipher."""

    cfg: NeuralCipherConfig
    encoder: nn.Sequential
    decoder: nn.Sequential
    adversary: nn.Sequential

    @classmethod
    def build(cls, cfg: NeuralCipherConfig, seed: int) -> CipherNets:
        torch.manual_seed(seed)
        k = cfg.key_bits if cfg.keyed else 0
        nets = cls(
            cfg,
            nn.Sequential(*_mlp([BLOCK + k, *cfg.hidden], cfg.cipher_width, norm=True), nn.Tanh()),
            nn.Sequential(*_mlp([cfg.cipher_width + k, *cfg.hidden[::-1]], BLOCK, norm=True)),
            nn.Sequential(
                *_mlp([cfg.cipher_width, 256, 128], BLOCK, norm=False, dropout=cfg.dropout)
            ),
        )
        for net in (nets.encoder, nets.decoder, nets.adversary):
            net.apply(_xavier)
        return nets

    def encode(self, blocks: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        return _run(self.encoder, _with_key(blocks, keys, self.cfg))

    def decode(self, cipher: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        return _run(self.decoder, _with_key(cipher, keys, self.cfg))


def _with_key(x: np.ndarray, keys: np.ndarray | None, cfg: NeuralCipherConfig) -> np.ndarray:
    if not cfg.keyed:
        return x
    if keys is None:
        raise ValueError("a keyed cipher needs the key")
    keys = np.broadcast_to(keys, (len(x), cfg.key_bits))
    return np.concatenate([x, keys], axis=1).astype(np.float32)


def _run(net: nn.Module, x: np.ndarray) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        return net(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()


def encode_with(encoder: nn.Module, blocks: np.ndarray) -> np.ndarray:
    """Ciphertext of ``blocks`` under an encoder alone (what an HMU holds)."""
    return _run(encoder, blocks)


def _keyed(x: np.ndarray, key: np.ndarray | None) -> np.ndarray:
    if key is None:
        return x
    return np.concatenate([x, np.broadcast_to(key, (len(x), len(key)))], axis=1)


def encrypt_update(
    encoder: nn.Module, global_w: Weights, local_w: Weights, key: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """An HMU's update as ``{"cipher": blocks x width, "scale": each block's RMS}``; a
    keyed cipher's encoder also takes this round's ``key``."""
    blocks, scales = to_blocks(flatten(delta(global_w, local_w)))
    cipher = encode_with(encoder, _keyed(blocks, key)).astype(np.float32)
    return {"cipher": cipher, "scale": scales}


def decrypt_update(
    decoder: nn.Module,
    tensors: Mapping[str, object],
    global_w: Weights,
    key: np.ndarray | None = None,
) -> Weights:
    """The local weights the server reads from an encrypted update (it holds the decoder,
    and for a keyed cipher the sender's key of the round)."""
    cipher, scales = tensors.get("cipher"), tensors.get("scale")
    if not isinstance(cipher, np.ndarray) or not isinstance(scales, np.ndarray):
        raise ValueError("a neural-cipher update holds 'cipher' and 'scale' arrays")
    size = sum(v.size for v in global_w.values())
    blocks = math.ceil(size / BLOCK)
    width = decoder[0].in_features - (0 if key is None else len(key))
    if cipher.shape != (blocks, width) or not np.isfinite(cipher).all():
        raise ValueError(f"ciphertext of shape {cipher.shape}, want ({blocks}, {width})")
    if scales.shape != (blocks,) or not np.isfinite(scales).all() or (scales < 0).any():
        raise ValueError(f"'scale' of shape {scales.shape}, want {blocks} finite values >= 0")
    vector = from_blocks(_run(decoder, _keyed(cipher, key)), scales, size)
    return apply_delta(global_w, unflatten(vector, global_w))


def random_keys(n: int, bits: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` keys of ``bits`` values in {-1, 1}."""
    return rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(n, bits))


def key_from_bytes(material: bytes, bits: int) -> np.ndarray:
    """The {-1, 1} key vector of ``material`` (HKDF output, at least ``bits / 8`` bytes)."""
    if len(material) * 8 < bits:
        raise ValueError(f"{len(material)} bytes of key material; {bits} bits needed")
    unpacked = np.unpackbits(np.frombuffer(material, dtype=np.uint8))[:bits]
    return unpacked.astype(np.float32) * 2 - 1


@dataclass
class Training:
    """How a cipher's training went, epoch by epoch (validation MSEs)."""

    reconstruction: list[float] = field(default_factory=list)
    adversary: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.reconstruction)


def _batches(n: int, size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, size):
        chunk = order[i : i + size]
        if len(chunk) > 1:  # batch normalisation needs two rows
            yield chunk


def train_cipher(
    cfg: NeuralCipherConfig, blocks: np.ndarray, seed: int
) -> tuple[CipherNets, Training]:
    """Train the three networks on ``blocks`` (rows of 128 values scaled as ``to_blocks``
    scales them), holding out a fifth for validation and early stopping."""
    rng = np.random.default_rng(seed)
    nets = CipherNets.build(cfg, seed)
    x = torch.as_tensor(np.asarray(blocks, dtype=np.float32))
    keys = torch.as_tensor(random_keys(len(x), cfg.key_bits, rng)) if cfg.keyed else None
    cut = max(2, len(x) // 5)
    order = torch.as_tensor(rng.permutation(len(x)))
    val, fit = order[:cut], order[cut:]
    e_and_d = torch.optim.Adam([*nets.encoder.parameters(), *nets.decoder.parameters()], cfg.lr)
    adv_opt = torch.optim.Adam(nets.adversary.parameters(), cfg.lr)
    mse = nn.MSELoss()

    def with_key(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return t if keys is None else torch.cat([t, keys[idx]], dim=1)

    history, best, best_state, stale = Training(), math.inf, None, 0
    for _ in range(cfg.max_epochs):
        for part in _batches(len(fit), cfg.batch, rng):
            idx = fit[part]
            nets.encoder.train(), nets.decoder.train(), nets.adversary.train()
            c = nets.encoder(with_key(x[idx], idx))
            loss = mse(nets.decoder(with_key(c, idx)), x[idx])
            if cfg.adversarial:
                loss = loss - cfg.adversary_weight * mse(nets.adversary(c), x[idx])
            e_and_d.zero_grad()
            loss.backward()
            e_and_d.step()
            adv_loss = mse(nets.adversary(c.detach()), x[idx])
            adv_opt.zero_grad()
            adv_loss.backward()
            adv_opt.step()
        recon, adv = _validate(nets, x[val], None if keys is None else keys[val])
        history.reconstruction.append(recon)
        history.adversary.append(adv)
        if recon < best - 1e-6:
            best, stale = recon, 0
            best_state = copy.deepcopy((nets.encoder.state_dict(), nets.decoder.state_dict()))
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if best_state is not None:
        nets.encoder.load_state_dict(best_state[0])
        nets.decoder.load_state_dict(best_state[1])
    return nets, history


def _validate(nets: CipherNets, x: torch.Tensor, keys: torch.Tensor | None) -> tuple[float, float]:
    for net in (nets.encoder, nets.decoder, nets.adversary):
        net.eval()
    with torch.no_grad():
        c = nets.encoder(x if keys is None else torch.cat([x, keys], dim=1))
        recon = nn.functional.mse_loss(
            nets.decoder(c if keys is None else torch.cat([c, keys], 1)), x
        )
        adv = nn.functional.mse_loss(nets.adversary(c), x)
    return float(recon), float(adv)


def train_attacker(
    cfg: NeuralCipherConfig, cipher: np.ndarray, blocks: np.ndarray, seed: int
) -> nn.Sequential:
    """A fresh attacker of the adversary's capacity, trained on ``(cipher, blocks)``
    pairs its party could make (same schedule and early stopping as the cipher).
    ``cipher`` rows may carry more than the ciphertext (a key the attacker holds)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    width = np.shape(cipher)[1]
    net = nn.Sequential(*_mlp([width, 256, 128], BLOCK, norm=False, dropout=cfg.dropout))
    net.apply(_xavier)
    c = torch.as_tensor(np.asarray(cipher, dtype=np.float32))
    x = torch.as_tensor(np.asarray(blocks, dtype=np.float32))
    cut = max(2, len(x) // 5)
    order = torch.as_tensor(rng.permutation(len(x)))
    val, fit = order[:cut], order[cut:]
    opt = torch.optim.Adam(net.parameters(), cfg.lr)
    best, best_state, stale = math.inf, None, 0
    for _ in range(cfg.max_epochs):
        net.train()
        for part in _batches(len(fit), cfg.batch, rng):
            idx = fit[part]
            loss = nn.functional.mse_loss(net(c[idx]), x[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            now = float(nn.functional.mse_loss(net(c[val]), x[val]))
        if now < best - 1e-6:
            best, stale, best_state = now, 0, copy.deepcopy(net.state_dict())
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return net


def attack(net: nn.Module, cipher: np.ndarray) -> np.ndarray:
    """What an attacker network makes of ``cipher``."""
    return _run(net, cipher)


def to_blocks(vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``vector`` padded with zeros and cut into rows of ``BLOCK``, each scaled to an RMS
    of ``BLOCK_RMS``; and each row's RMS before (1 for a row of zeros)."""
    flat = np.asarray(vector, dtype=np.float32).ravel()
    padded = np.zeros(math.ceil(max(flat.size, 1) / BLOCK) * BLOCK, dtype=np.float32)
    padded[: flat.size] = flat
    rows = padded.reshape(-1, BLOCK)
    rms = np.sqrt(np.mean(rows.astype(np.float64) ** 2, axis=1)).astype(np.float32)
    rms[rms == 0] = 1.0
    return (rows / rms[:, None] * BLOCK_RMS).astype(np.float32), rms


def from_blocks(blocks: np.ndarray, scales: np.ndarray, size: int) -> np.ndarray:
    """The vector ``to_blocks`` cut up (the first ``size`` values)."""
    factor = np.asarray(scales, dtype=np.float32)[:, None] / BLOCK_RMS
    return (np.asarray(blocks, dtype=np.float32) * factor).ravel()[:size].astype(np.float32)


def random_blocks(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` Gaussian blocks scaled as ``to_blocks`` scales a block: the cipher's
    training data, and pairs any holder of the encoder can make without limit."""
    return to_blocks(rng.normal(size=n * BLOCK))[0]
