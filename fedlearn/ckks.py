"""CKKS homomorphic encryption of model updates (TenSEAL), for the FL + HE baseline.

Who holds which key (the threat model of ``update_encryption: {kind: ckks}``):

* the *key authority* makes one CKKS context per run at enrolment; in ``iomt run`` that
  is the launcher, which gives it to each HMU with its other enrolment material (in
  its setup, over the fork server's pipe with ``--processes``; in a field trial in
  the owner-only enrolment file) and then forgets it;
* every HMU holds the full context, secret key included: it encrypts its update and,
  when asked, decrypts the round's aggregate;
* the server holds the public context only (``make_context_public``: no secret key,
  ``has_secret_key()`` is false): it can add ciphertexts and multiply them by its own
  plaintext weights ``n_i / n``, and can never decrypt one.  It learns the aggregate
  only when an HMU of the round decrypts it and sends it back, which it must, to
  evaluate and to send the next global model;
* the link, the broker and a fog node see ciphertexts only.

An update is encrypted as its delta from the round's global model, flattened and cut
into vectors of ``SLOTS`` values.  Parameters (TOOLCHAIN.md): poly modulus 8192,
coefficient bits [60, 40, 40, 60], scale 2^40: one plaintext multiplication deep, an
error near 1e-8, about 0.33 MB per vector.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from iomt.errors import DecodeError
from iomt.fedlearn.model import Weights
from iomt.fedlearn.updates import delta, flatten, unflatten

if TYPE_CHECKING:  # TenSEAL is imported where it is used: most processes never need it
    import tenseal as ts

POLY_MODULUS = 8192
COEFF_BITS = (60, 40, 40, 60)
SCALE = 2.0**40
SLOTS = POLY_MODULUS // 2


def new_context() -> ts.Context:
    """A fresh context with its secret key (the key authority's, at enrolment)."""
    import tenseal as ts

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, POLY_MODULUS, coeff_mod_bit_sizes=list(COEFF_BITS))
    ctx.global_scale = SCALE
    return ctx


def secret_bytes(ctx: ts.Context) -> bytes:
    """The context with its secret key, for an HMU (no Galois keys: no rotation is used)."""
    return ctx.serialize(save_secret_key=True, save_galois_keys=False, save_relin_keys=False)


def public_bytes(ctx: ts.Context) -> bytes:
    """The context without its secret key, for the server."""
    import tenseal as ts

    public = ts.context_from(secret_bytes(ctx))
    public.make_context_public()
    return public.serialize(save_galois_keys=False, save_relin_keys=False)


@functools.lru_cache(maxsize=4)
def _load(digest: str, data: bytes) -> ts.Context:
    import tenseal as ts

    return ts.context_from(data)


def load_context(data: bytes) -> ts.Context:
    """A context from its bytes, loaded once per process (contexts do not pickle)."""
    return _load(hashlib.sha256(data).hexdigest(), data)


def encrypt(ctx: ts.Context, vector: np.ndarray) -> list[bytes]:
    """``vector`` as serialised CKKS vectors of at most ``SLOTS`` values each."""
    import tenseal as ts

    flat = np.asarray(vector, dtype=np.float64).ravel()
    return [
        ts.ckks_vector(ctx, flat[i : i + SLOTS].tolist()).serialize()
        for i in range(0, max(len(flat), 1), SLOTS)
    ]


def _vectors(ctx: ts.Context, parts: Sequence[bytes]) -> list[ts.CKKSVector]:
    import tenseal as ts

    try:
        return [ts.ckks_vector_from(ctx, part) for part in parts]
    except Exception as exc:  # TenSEAL raises bare ValueError/RuntimeError on garbage
        raise DecodeError(f"not a CKKS ciphertext of this run: {exc}") from None


def check_ciphertexts(ctx: ts.Context, parts: Sequence[bytes]) -> None:
    """``DecodeError`` unless every part is a fresh CKKS vector under ``ctx``: two
    polynomials at the top level and scale, as ``encrypt`` makes them, so that the
    server's weighting and sum cannot fail on it later (parsing and looking costs a
    fifth of trying the multiplication)."""
    for vector in _vectors(ctx, parts):
        for ct in vector.ciphertext():
            if (ct.size(), ct.coeff_modulus_size(), ct.scale) != (2, len(COEFF_BITS) - 1, SCALE):
                raise DecodeError("not a fresh CKKS ciphertext: wrong size, level or scale")


def weighted_sum(ctx: ts.Context, updates: Sequence[tuple[Sequence[bytes], float]]) -> list[bytes]:
    """``sum_i w_i c_i`` over encrypted updates ``(c_i, w_i)``, without the secret key."""
    if not updates:
        raise ValueError("nothing to add up")
    sizes = {len(parts) for parts, _ in updates}
    if len(sizes) != 1:
        raise DecodeError(f"encrypted updates of different lengths: {sorted(sizes)}")
    total: list[ts.CKKSVector] | None = None
    for parts, weight in updates:
        scaled = [v * float(weight) for v in _vectors(ctx, parts)]
        total = scaled if total is None else [a + b for a, b in zip(total, scaled, strict=True)]
    assert total is not None
    return [v.serialize() for v in total]


def decrypt(ctx: ts.Context, parts: Sequence[bytes], size: int) -> np.ndarray:
    """The first ``size`` values of the encrypted vectors (needs the secret key)."""
    if not ctx.has_secret_key():
        raise ValueError("this context holds no secret key")
    values = np.concatenate([np.asarray(v.decrypt()) for v in _vectors(ctx, parts)])
    if len(values) < size:
        raise DecodeError(f"the ciphertext holds {len(values)} values, not {size}")
    return values[:size]


def encrypt_update(ctx: ts.Context, global_w: Weights, local_w: Weights) -> dict[str, bytes]:
    """An HMU's update as ``{"ckks.<i>": ciphertext}``: its delta from ``global_w``."""
    parts = encrypt(ctx, flatten(delta(global_w, local_w)))
    return {f"ckks.{i}": part for i, part in enumerate(parts)}


def ciphertexts(tensors: dict[str, object]) -> list[bytes]:
    """The ciphertexts of an encrypted update or aggregate, in order; ``DecodeError`` if
    the tensors are not ``ckks.0 .. ckks.<n>`` byte strings."""
    names = [f"ckks.{i}" for i in range(len(tensors))]
    if sorted(tensors) != sorted(names) or not all(isinstance(v, bytes) for v in tensors.values()):
        raise DecodeError(f"expected CKKS ciphertexts ckks.0..ckks.<n>, got {sorted(tensors)[:4]}")
    return [tensors[n] for n in names]  # type: ignore[misc]


def decrypt_delta(ctx: ts.Context, parts: Sequence[bytes], like: Weights) -> Weights:
    """The encrypted delta as weights shaped ``like`` (needs the secret key)."""
    size = sum(v.size for v in like.values())
    delta = unflatten(decrypt(ctx, parts, size), like)
    return {k: v.astype(np.float32) for k, v in delta.items()}
