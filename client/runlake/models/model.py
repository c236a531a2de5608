"""The ``MLmodel`` file: what a model directory holds and how to load it.

Layout and field names are MLflow's, so MLflow reads runlake's models and runlake reads
MLflow's. A runlake model's MLmodel has::

    artifact_path: model            # where log_model put it in the run (absent for save_model)
    flavors:                        # one entry per way of loading it; python_function always
      python_function: {loader_module: mlflow.sklearn, env: {...}, python_version: ...}
      sklearn: {pickled_model: model.pkl, serialization_format: cloudpickle, ...}
    model_uuid: 4f1c...             # 32 hex digits, fresh per save
    run_id: ...                     # the run that logged it (absent for save_model)
    utc_time_created: '2026-01-01 12:00:00.000000'
    signature: {inputs: '<json>', outputs: '<json>', params: null}
    saved_input_example_info: {artifact_path: input_example.json, type: dataframe, ...}
    model_size_bytes: 1234
    runlake_version: 0.1.0

Keys this module does not know (MLflow's ``mlflow_version``, ``model_id``...) are kept and
written back unchanged, so loading and re-saving an MLflow model loses nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runlake.models.environment import installed_version
from runlake.models.errors import ModelFormatError
from runlake.models.input_example import load_input_example
from runlake.models.schema import ParamSchema, Schema
from runlake.models.signature import ModelSignature

__all__ = ["MLMODEL_FILE_NAME", "Model", "ModelInfo"]

MLMODEL_FILE_NAME = "MLmodel"
PYFUNC_FLAVOR = "python_function"

_KNOWN = (
    "artifact_path",
    "flavors",
    "model_uuid",
    "run_id",
    "utc_time_created",
    "signature",
    "saved_input_example_info",
    "metadata",
)


@dataclass
class ModelInfo:
    """What ``log_model`` returns: where the model went and what it is."""

    artifact_path: str | None
    flavors: dict[str, dict[str, Any]]
    model_uri: str
    model_uuid: str
    run_id: str | None
    utc_time_created: str
    signature: ModelSignature | None
    saved_input_example_info: dict[str, Any] | None
    metadata: dict[str, Any] | None
    registered_model_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Model:
    """An MLmodel file in memory: flavors, signature, example info and identity."""

    def __init__(
        self,
        artifact_path: str | None = None,
        run_id: str | None = None,
        utc_time_created: str | None = None,
        flavors: dict[str, dict[str, Any]] | None = None,
        signature: ModelSignature | None = None,
        saved_input_example_info: dict[str, Any] | None = None,
        model_uuid: str | None = None,
        metadata: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        self.artifact_path = artifact_path
        self.run_id = run_id
        self.utc_time_created = utc_time_created or str(
            dt.datetime.now(dt.UTC).replace(tzinfo=None)
        )
        self.flavors: dict[str, dict[str, Any]] = dict(flavors or {})
        self.signature = signature
        self.saved_input_example_info = saved_input_example_info
        self.model_uuid = model_uuid or uuid.uuid4().hex
        self.metadata = metadata
        self.extra: dict[str, Any] = dict(extra)

    def add_flavor(self, name: str, **params: Any) -> Model:
        """Record one flavor's configuration (its loader reads it back)."""
        self.flavors[name] = dict(params)
        return self

    def get_input_schema(self) -> Schema | None:
        """The signature's inputs, if any."""
        return self.signature.inputs if self.signature is not None else None

    def get_output_schema(self) -> Schema | None:
        """The signature's outputs, if any."""
        return self.signature.outputs if self.signature is not None else None

    def get_params_schema(self) -> ParamSchema | None:
        """The signature's params, if any."""
        return self.signature.params if self.signature is not None else None

    def flavor(self, name: str) -> dict[str, Any]:
        """One flavor's configuration; ModelFormatError listing those present if absent."""
        try:
            return self.flavors[name]
        except KeyError:
            raise ModelFormatError(
                f"the model has no {name!r} flavor (it has {sorted(self.flavors)})",
                field="flavors",
            ) from None

    # -- serialization ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The MLmodel content as plain data (only set fields, MLflow's names)."""
        out: dict[str, Any] = {}
        if self.artifact_path is not None:
            out["artifact_path"] = self.artifact_path
        out["flavors"] = self.flavors
        out["model_uuid"] = self.model_uuid
        if self.run_id is not None:
            out["run_id"] = self.run_id
        out["utc_time_created"] = self.utc_time_created
        if self.signature is not None:
            out["signature"] = self.signature.to_dict()
        if self.saved_input_example_info is not None:
            out["saved_input_example_info"] = self.saved_input_example_info
        if self.metadata is not None:
            out["metadata"] = self.metadata
        out.update(self.extra)
        return out

    def to_yaml(self) -> str:
        """The MLmodel file's text."""
        text: str = yaml.safe_dump(self.to_dict(), default_flow_style=False)
        return text

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the MLmodel file; ``path`` is the model directory or the file itself."""
        target = Path(path)
        if target.is_dir():
            target = target / MLMODEL_FILE_NAME
        target.write_text(self.to_yaml())

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Model:
        """Build from MLmodel content (runlake's or MLflow's)."""
        raw = dict(raw)
        signature = raw.pop("signature", None)
        flavors = raw.pop("flavors", None)
        if not isinstance(flavors, dict) or not flavors:
            raise ModelFormatError("MLmodel lists no flavors", field="flavors")
        known = {k: raw.pop(k) for k in _KNOWN if k in raw}
        return cls(
            flavors=flavors,
            signature=ModelSignature.from_dict(signature) if isinstance(signature, dict) else None,
            **known,
            **raw,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Model:
        """Read the MLmodel file of a local model directory (or the file itself)."""
        target = Path(path)
        if target.is_dir():
            target = target / MLMODEL_FILE_NAME
        try:
            raw = yaml.safe_load(target.read_text())
        except FileNotFoundError:
            raise ModelFormatError(
                f"no {MLMODEL_FILE_NAME} file: {target.parent.name!r} is not a model directory",
                field="model_uri",
            ) from None
        except yaml.YAMLError as e:
            raise ModelFormatError(f"{MLMODEL_FILE_NAME} is not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ModelFormatError(f"{MLMODEL_FILE_NAME} must be a YAML mapping")
        return cls.from_dict(raw)

    def load_input_example(self, path: str | os.PathLike[str]) -> Any:
        """The input example saved in the model directory ``path``, or None."""
        if not self.saved_input_example_info:
            return None
        return load_input_example(
            Path(path), self.saved_input_example_info, self.get_input_schema()
        )

    def get_model_info(self, model_uri: str) -> ModelInfo:
        """A ModelInfo describing this model stored at ``model_uri``."""
        return ModelInfo(
            artifact_path=self.artifact_path,
            flavors=self.flavors,
            model_uri=model_uri,
            model_uuid=self.model_uuid,
            run_id=self.run_id,
            utc_time_created=self.utc_time_created,
            signature=self.signature,
            saved_input_example_info=self.saved_input_example_info,
            metadata=self.metadata,
            extra=dict(self.extra),
        )


def finish(model: Model, model_dir: Path) -> None:
    """Stamp size and runlake version, then write MLmodel (the last file of a save)."""
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    model.extra["model_size_bytes"] = size
    model.extra.setdefault("runlake_version", installed_version("runlake") or "unknown")
    model.save(model_dir)
