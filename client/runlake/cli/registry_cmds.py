"""``runlake artifacts …`` and ``runlake models …``: thin over RunlakeClient."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from runlake._registry import ModelVersion, RegisteredModel
from runlake.cli._output import Output, emit

__all__ = ["artifacts", "models"]

artifacts = typer.Typer(help="List and download a run's artifacts.", no_args_is_help=True)
models = typer.Typer(help="The model registry, and model serving.", no_args_is_help=True)

OutOpt = Annotated[Output, typer.Option("--output", "-o", help="table, json or csv.")]


def _ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else ""


def _client(ctx: typer.Context) -> Any:
    from runlake.cli.app import _client as client

    return client(ctx)


def _version_row(v: ModelVersion) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "stage": v.current_stage,
        "aliases": ",".join(v.aliases),
        "run_id": v.run_id or "",
        "source": v.source,
        "created": _ms(v.creation_timestamp),
        "user": v.user_id,
        "description": v.description,
    }


def _model_row(m: RegisteredModel) -> dict[str, Any]:
    latest = max((v.version for v in m.latest_versions), default=None)
    return {
        "name": m.name,
        "latest_version": latest,
        "aliases": ",".join(f"{a}={v}" for a, v in sorted(m.aliases.items())),
        "tags": ",".join(f"{k}={v}" for k, v in sorted(m.tags.items())),
        "updated": _ms(m.last_updated_timestamp),
        "description": m.description,
    }


# -- artifacts --


@artifacts.command("ls")
def artifacts_ls(
    ctx: typer.Context,
    run_id: str,
    path: Annotated[str, typer.Argument(help="A directory under the run's root.")] = "",
    output: OutOpt = Output.table,
) -> None:
    """List a run's artifacts (the direct children of PATH)."""
    files = _client(ctx).list_artifacts(run_id, path or None)
    rows = [{"path": f.path, "is_dir": f.is_dir, "size": f.file_size} for f in files]
    emit(rows, ["path", "is_dir", "size"], output, f"artifacts of {run_id}")


@artifacts.command("get")
def artifacts_get(
    ctx: typer.Context,
    run_id: str,
    path: Annotated[str, typer.Argument(help="A file or directory ('' for all).")] = "",
    dst: Annotated[str, typer.Option("--dst", "-d", help="Where to put it.")] = ".",
) -> None:
    """Download a file or directory of a run's artifacts."""
    typer.echo(_client(ctx).download_artifacts(run_id, path, dst))


# -- models --


@models.command("list")
def models_list(
    ctx: typer.Context,
    filter_string: Annotated[str, typer.Option("--filter", help="e.g. name LIKE 'churn%'")] = "",
    output: OutOpt = Output.table,
) -> None:
    """Search registered models."""
    found = _client(ctx).search_registered_models(filter_string or None)
    rows = [_model_row(m) for m in found]
    cols = ["name", "latest_version", "aliases", "tags", "updated", "description"]
    emit(rows, cols, output, "registered models")


@models.command("create")
def models_create(
    ctx: typer.Context,
    name: str,
    description: Annotated[str, typer.Option("--description")] = "",
) -> None:
    """Create a registered model."""
    m = _client(ctx).create_registered_model(name, description=description or None)
    typer.echo(f"created registered model {m.name}")


@models.command("get")
def models_get(
    ctx: typer.Context,
    name: str,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="ISO time (UTC if no zone): the model as it was then."),
    ] = None,
    output: OutOpt = Output.table,
) -> None:
    """Show a registered model, its latest versions and aliases (now, or --as-of a time)."""
    as_of_ms = None
    if as_of:
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError:
            raise typer.BadParameter(
                f"{as_of!r} is not an ISO time", param_hint="--as-of"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        as_of_ms = int(when.timestamp() * 1000)
    m = _client(ctx).get_registered_model(name, as_of_ms=as_of_ms)
    if output is Output.table:
        emit([_model_row(m)], list(_model_row(m)), output, f"model {name}")
        emit([_version_row(v) for v in m.latest_versions], list(_VERSION_COLS), output)
    else:
        row = _model_row(m)
        row["latest_versions"] = [_version_row(v) for v in m.latest_versions]
        emit([row], list(row), output)


_VERSION_COLS = ("name", "version", "stage", "aliases", "run_id", "source", "created", "user")


@models.command("versions")
def models_versions(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model's versions.")] = None,
    filter_string: Annotated[str, typer.Option("--filter", help="e.g. run_id = '…'")] = "",
    output: OutOpt = Output.table,
) -> None:
    """Search model versions."""
    parts = [f"name = '{name}'"] if name else []
    if filter_string:
        parts.append(filter_string)
    found = _client(ctx).search_model_versions(" AND ".join(parts) or None)
    emit([_version_row(v) for v in found], list(_VERSION_COLS), output, "model versions")


@models.command("register")
def models_register(ctx: typer.Context, model_uri: str, name: str) -> None:
    """Register MODEL_URI (e.g. runs:/<run_id>/model) as the next version of NAME."""
    from runlake.errors import AlreadyExists

    client = _client(ctx)
    with contextlib.suppress(AlreadyExists):  # the first version creates the model
        client.create_registered_model(name)
    run_id = model_uri[len("runs:/") :].split("/")[0] if model_uri.startswith("runs:/") else None
    v = client.create_model_version(name, model_uri, run_id=run_id)
    typer.echo(f"registered {name} version {v.version}")


@models.command("stage")
def models_stage(
    ctx: typer.Context,
    name: str,
    version: int,
    stage: str,
    archive_existing: Annotated[bool, typer.Option("--archive-existing")] = False,
) -> None:
    """Move a version to a stage (None, Staging, Production, Archived)."""
    v = _client(ctx).transition_model_version_stage(name, version, stage, archive_existing)
    typer.echo(f"{name} version {v.version} is now in {v.current_stage}")


@models.command("alias")
def models_alias(
    ctx: typer.Context,
    name: str,
    alias: str,
    version: Annotated[int | None, typer.Argument(help="Omit with --delete.")] = None,
    delete: Annotated[bool, typer.Option("--delete")] = False,
) -> None:
    """Point ALIAS at VERSION (or --delete it)."""
    client = _client(ctx)
    if delete:
        client.delete_registered_model_alias(name, alias)
        typer.echo(f"deleted alias {alias} of {name}")
        return
    if version is None:
        raise typer.BadParameter("give a version, or --delete", param_hint="VERSION")
    client.set_registered_model_alias(name, alias, version)
    typer.echo(f"{name}@{alias} -> version {version}")


@models.command("delete")
def models_delete(
    ctx: typer.Context,
    name: str,
    version: Annotated[int | None, typer.Option("--version", help="Only this version.")] = None,
) -> None:
    """Delete a registered model (with its versions), or one version."""
    client = _client(ctx)
    if version is None:
        client.delete_registered_model(name)
        typer.echo(f"deleted registered model {name}")
    else:
        client.delete_model_version(name, version)
        typer.echo(f"deleted {name} version {version}")


@models.command("history")
def models_history(ctx: typer.Context, name: str, output: OutOpt = Output.table) -> None:
    """Who did what to a registered model, and when (from the events table)."""
    rows = []
    for e in _client(ctx).get_model_history(name):
        payload = json.loads(e.payload) if e.payload else {}
        detail = {k: v for k, v in payload.items() if k not in ("model_id", "name")}
        rows.append(
            {
                "time": _ms(e.timestamp),
                "user": e.user,
                "event": e.event_type,
                "detail": json.dumps(detail, sort_keys=True),
            }
        )
    emit(rows, ["time", "user", "event", "detail"], output, f"history of {name}")


@models.command("rename")
def models_rename(ctx: typer.Context, name: str, new_name: str) -> None:
    """Rename a registered model (its versions, aliases and history follow it)."""
    _client(ctx).rename_registered_model(name, new_name)
    typer.echo(f"renamed {name} to {new_name}")


@models.command("describe")
def models_describe(
    ctx: typer.Context,
    name: str,
    description: str,
    version: Annotated[int | None, typer.Option("--version", help="Describe this version.")] = None,
) -> None:
    """Set the (markdown) description of a registered model or of one version."""
    client = _client(ctx)
    if version is None:
        client.update_registered_model(name, description)
    else:
        client.update_model_version(name, version, description)
    typer.echo(f"updated the description of {name}" + (f" version {version}" if version else ""))


@models.command("tag")
def models_tag(
    ctx: typer.Context,
    name: str,
    key: str,
    value: Annotated[str | None, typer.Argument(help="Omit with --delete.")] = None,
    version: Annotated[int | None, typer.Option("--version", help="Tag this version.")] = None,
    delete: Annotated[bool, typer.Option("--delete")] = False,
) -> None:
    """Set (or --delete) a tag of a registered model or of one version."""
    client = _client(ctx)
    if not delete and value is None:
        raise typer.BadParameter("give a value, or --delete", param_hint="VALUE")
    if version is None:
        if delete:
            client.delete_registered_model_tag(name, key)
        else:
            client.set_registered_model_tag(name, key, value)
    elif delete:
        client.delete_model_version_tag(name, version, key)
    else:
        client.set_model_version_tag(name, version, key, value)
    typer.echo(
        f"{'deleted' if delete else 'set'} tag {key} on {name}"
        + (f" version {version}" if version else "")
    )
