"""A fresh envelope stamp: a random message id and the wall clock, read at the agents' edge."""

from __future__ import annotations

import time
import uuid
from typing import TypedDict


class Stamp(TypedDict):
    message_id: str
    created_at: float


def stamp() -> Stamp:
    """``new_envelope(..., **stamp())``: a random 128-bit id and the current time."""
    return {"message_id": uuid.uuid4().hex, "created_at": time.time()}
