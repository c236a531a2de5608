"""Column, tensor and param specs, serialized exactly as MLflow writes them in ``MLmodel``.

A signature's ``inputs`` and ``outputs`` are stored as JSON *strings* inside the YAML file
(MLflow's choice, kept so that either tool reads the other's files):

- a column: ``{"type": "double", "name": "a", "required": true}`` (``name`` left out when
  the schema is positional);
- a tensor: ``{"name": "x", "type": "tensor", "tensor-spec": {"dtype": "float32",
  "shape": [-1, 4]}}`` (``-1`` is a free dimension, normally the batch);
- a param: ``{"name": "k", "default": 3, "shape": null, "type": "long"}``.

MLflow's nested column types (``array``, ``object``, ``map``, ``any``) are read and written
back unchanged, and enforcement only checks that such a column is present: runlake infers and
enforces the scalar types, which is what tabular models use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from runlake.models.errors import ModelFormatError

__all__ = ["ColSpec", "DataType", "ParamSchema", "ParamSpec", "Schema", "TensorSpec"]


class DataType(Enum):
    """MLflow's scalar column types, each with the numpy dtype a column is converted to."""

    boolean = "boolean"
    integer = "integer"
    long = "long"
    float = "float"
    double = "double"
    string = "string"
    binary = "binary"
    datetime = "datetime"

    def to_numpy(self) -> np.dtype[Any]:
        """The numpy dtype a column of this type holds after enforcement."""
        return np.dtype(_NUMPY[self])

    def __repr__(self) -> str:
        return self.value

    def __str__(self) -> str:
        return self.value


_NUMPY: dict[DataType, str] = {
    DataType.boolean: "bool",
    DataType.integer: "int32",
    DataType.long: "int64",
    DataType.float: "float32",
    DataType.double: "float64",
    DataType.string: "object",
    DataType.binary: "object",
    DataType.datetime: "datetime64[ns]",
}

#: A column type: a scalar DataType, or MLflow's JSON for a nested type, kept as read.
ColType = DataType | dict[str, Any]


def _col_type_from_json(raw: Any, where: str) -> ColType:
    if isinstance(raw, str):
        try:
            return DataType(raw)
        except ValueError:
            raise ModelFormatError(f"unknown column type {raw!r}", field=where) from None
    if isinstance(raw, dict):
        return dict(raw)
    raise ModelFormatError(f"column type must be a string or an object, got {raw!r}", field=where)


@dataclass(frozen=True)
class ColSpec:
    """One column: its type, its name (None in a positional schema), and whether required."""

    type: ColType
    name: str | None = None
    required: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.type, str):  # accept "double" as well as DataType.double
            object.__setattr__(self, "type", _col_type_from_json(self.type, "type"))

    def to_dict(self) -> dict[str, Any]:
        """MLflow's JSON object for this column (key order as MLflow writes it)."""
        if isinstance(self.type, DataType):
            out: dict[str, Any] = {"type": self.type.value}
        else:
            out = dict(self.type)
        if self.name is not None:
            out["name"] = self.name
        out["required"] = self.required
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ColSpec:
        """Read one column as MLflow writes it; nested types are kept as their JSON."""
        name = raw.get("name")
        where = f"column {name!r}" if name is not None else "column"
        if raw.get("type") in _NESTED:
            col_type: ColType = {k: v for k, v in raw.items() if k not in ("name", "required")}
        else:
            col_type = _col_type_from_json(raw.get("type"), where)
        return cls(type=col_type, name=name, required=bool(raw.get("required", True)))

    def __str__(self) -> str:
        kind = self.type.value if isinstance(self.type, DataType) else str(self.type["type"])
        opt = "" if self.required else " (optional)"
        return f"{self.name!r}: {kind}{opt}" if self.name is not None else f"{kind}{opt}"


_NESTED = ("array", "object", "map", "any")


@dataclass(frozen=True)
class TensorSpec:
    """A numpy tensor: dtype and shape, ``-1`` marking a free dimension."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    def to_dict(self) -> dict[str, Any]:
        """MLflow's JSON object for this tensor."""
        out: dict[str, Any] = {} if self.name is None else {"name": self.name}
        out["type"] = "tensor"
        out["tensor-spec"] = {"dtype": str(self.dtype), "shape": list(self.shape)}
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TensorSpec:
        """Read one tensor as MLflow writes it."""
        spec = raw.get("tensor-spec")
        if not isinstance(spec, dict) or "dtype" not in spec or "shape" not in spec:
            raise ModelFormatError("tensor needs a 'tensor-spec' with dtype and shape")
        try:
            dtype = np.dtype(spec["dtype"])
        except TypeError:
            raise ModelFormatError(
                f"unknown tensor dtype {spec['dtype']!r}", field=str(raw.get("name") or "tensor")
            ) from None
        return cls(dtype=dtype, shape=tuple(spec["shape"]), name=raw.get("name"))

    def __str__(self) -> str:
        head = f"{self.name!r}: " if self.name is not None else ""
        return f"{head}Tensor({self.dtype}, {self.shape})"


Spec = ColSpec | TensorSpec


class Schema:
    """An ordered list of column specs or of tensor specs (never a mix), all named or none."""

    def __init__(self, inputs: Iterable[Spec]) -> None:
        self.inputs: list[Spec] = list(inputs)
        if not self.inputs:
            raise ModelFormatError("a schema needs at least one column or tensor")
        kinds = {type(s) for s in self.inputs}
        if len(kinds) > 1:
            raise ModelFormatError("a schema holds columns or tensors, not both")
        named = [s.name is not None for s in self.inputs]
        if any(named) and not all(named):
            raise ModelFormatError("a schema's entries are either all named or all positional")
        names = [s.name for s in self.inputs if s.name is not None]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ModelFormatError("duplicate name in schema", field=dup)

    @property
    def is_tensor_spec(self) -> bool:
        """True when the schema describes numpy tensors rather than DataFrame columns."""
        return isinstance(self.inputs[0], TensorSpec)

    @property
    def has_names(self) -> bool:
        """True when entries are matched by name (False: by position)."""
        return self.inputs[0].name is not None

    def input_names(self) -> list[str]:
        """The names in schema order (empty for a positional schema)."""
        return [s.name for s in self.inputs if s.name is not None]

    def required_input_names(self) -> list[str]:
        """Names that ``predict`` input must contain."""
        return [
            s.name
            for s in self.inputs
            if s.name is not None and (not isinstance(s, ColSpec) or s.required)
        ]

    def to_json(self) -> str:
        """The JSON string MLflow stores under ``signature.inputs``/``outputs``."""
        return json.dumps([s.to_dict() for s in self.inputs])

    @classmethod
    def from_json(cls, text: str) -> Schema:
        """Parse MLflow's JSON string back into a schema."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelFormatError(f"schema is not valid JSON: {e}") from None
        if not isinstance(raw, list):
            raise ModelFormatError("schema JSON must be a list")
        return cls(
            TensorSpec.from_dict(x) if x.get("type") == "tensor" else ColSpec.from_dict(x)
            for x in raw
        )

    def __iter__(self) -> Iterator[Spec]:
        return iter(self.inputs)

    def __len__(self) -> int:
        return len(self.inputs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self.inputs == other.inputs

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        return "[" + ", ".join(str(s) for s in self.inputs) + "]"


@dataclass(frozen=True)
class ParamSpec:
    """An inference parameter (``predict(..., params={...})``): type, default, shape."""

    name: str
    type: DataType
    default: Any
    shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.type, str):
            object.__setattr__(self, "type", DataType(self.type))
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(self.shape))
        if self.shape not in (None, (-1,)):
            raise ModelFormatError("param shape must be null or [-1]", field=self.name)

    def to_dict(self) -> dict[str, Any]:
        """MLflow's JSON object for this param (datetimes as ISO strings)."""
        default = self.default
        if hasattr(default, "isoformat"):
            default = default.isoformat()
        return {
            "name": self.name,
            "default": default,
            "shape": None if self.shape is None else list(self.shape),
            "type": self.type.value,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ParamSpec:
        """Read one param as MLflow writes it."""
        try:
            dtype = DataType(raw["type"])
        except (KeyError, ValueError):
            raise ModelFormatError(
                f"unknown param type {raw.get('type')!r}", field=str(raw.get("name"))
            ) from None
        shape = raw.get("shape")
        return cls(
            name=str(raw["name"]),
            type=dtype,
            default=raw.get("default"),
            shape=None if shape is None else tuple(shape),
        )


class ParamSchema:
    """The ordered params a model accepts at predict time."""

    def __init__(self, params: Iterable[ParamSpec]) -> None:
        self.params: list[ParamSpec] = list(params)
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ModelFormatError("duplicate param name", field=dup)

    def to_json(self) -> str:
        """The JSON string MLflow stores under ``signature.params``."""
        return json.dumps([p.to_dict() for p in self.params])

    @classmethod
    def from_json(cls, text: str) -> ParamSchema:
        """Parse MLflow's JSON string back into a param schema."""
        raw = json.loads(text)
        if not isinstance(raw, list):
            raise ModelFormatError("param schema JSON must be a list")
        return cls(ParamSpec.from_dict(x) for x in raw)

    def __iter__(self) -> Iterator[ParamSpec]:
        return iter(self.params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSchema) and self.params == other.params

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        return "[" + ", ".join(f"{p.name!r}: {p.type.value} = {p.default!r}" for p in self) + "]"
