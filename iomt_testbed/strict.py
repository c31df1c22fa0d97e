"""The base model of every scenario section and wire message: strict and immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are errors (a typo never passes silently); instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
