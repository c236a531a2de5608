"""The model registry: entities and ``register_model`` (the calls live on RunlakeClient)."""

from __future__ import annotations

from runlake._registry import ModelHistoryEntry, ModelVersion, RegisteredModel, parse_models_uri
from runlake.fluent import register_model

__all__ = [
    "ModelHistoryEntry",
    "ModelVersion",
    "RegisteredModel",
    "parse_models_uri",
    "register_model",
]
