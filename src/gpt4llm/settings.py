"""One declaration per setting (DESIGN.md principle 9).

A stage's settings are one pydantic class; each field's docstring is its documentation. From that
class come:

- the command's options (``command``): the flag is the field's name (``learning_rate`` ->
  ``--learning-rate``), plus the aliases its ``Opt`` lists (``--lr``); type, choices, range and
  default come from the annotation and ``Field``; the help text is the docstring;
- the pipeline's stage section (``section``): the same fields, minus those the pipeline owns
  (``Opt(pipeline=True)``: paths, the models of ``models:``, the journal, the backend), so a YAML
  key and a flag are one name with one validation.

Nested settings (``backend: BackendSettings``) become flags of their own fields. When two fields
of a command claim the same short alias, the field declared by the command's own class keeps it
(``eval judge``: ``-q`` is ``--questions``, and ``--quiet`` has no short form there).

Why a small helper and not tyro, jsonargparse or pydantic-settings' CLI: all three build argparse
parsers, so adopting one means replacing Typer (and its help pages, exit codes and the rich error
output every command already has and tests check) for every command at once; none of them lets
a field carry the pipeline-owned mark the YAML section needs. Mapping a field to a Typer option is
~150 lines here, and Typer keeps doing the parsing.
"""

from __future__ import annotations

import inspect
import math
import types
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo

from gpt4llm.errors import UserError


class Opt:
    """How a field meets the command line and the pipeline file.

    ``flags``: extra names (``"-o"``, ``"--lr"``). ``pipeline``: the pipeline sets it (a path, a model
    of ``models:``, the journal), so it is not a key of the stage's YAML section. ``cli``: False for a
    pipeline-only setting (not a flag). ``argument``: a positional argument instead of an option.
    """

    __slots__ = ("flags", "pipeline", "cli", "argument")

    def __init__(self, *flags: str, pipeline: bool = False, cli: bool = True, argument: bool = False):
        self.flags, self.pipeline, self.cli, self.argument = flags, pipeline, cli, argument


def _positive(unit: str) -> AfterValidator:
    def check(v: float | None) -> float | None:
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError(f"must be a positive number {unit}")
        return v

    return AfterValidator(check)


# Optional positive quantities, with the message the flag and the YAML key both give.
USD = Annotated[float | None, _positive("of dollars")]
PER_MINUTE = Annotated[float | None, _positive("per minute")]


class Settings(BaseModel):
    """Base of every stage's settings: unknown names are refused, field docstrings are the help."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True,
                              protected_namespaces=())


def opt(field: FieldInfo) -> Opt:
    return next((m for m in field.metadata if isinstance(m, Opt)), Opt())


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _is_settings(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, Settings)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def cli_fields(cls: type[Settings]) -> list[tuple[str, FieldInfo, tuple[str, ...]]]:
    """(name, field, path) of every field that is a command-line option, nested settings flattened
    (``path`` locates the value: ("backend", "concurrency")). The class's own fields come first."""
    own = set(cls.__annotations__) if hasattr(cls, "__annotations__") else set()
    out = []
    for name, f in sorted(cls.model_fields.items(), key=lambda kv: kv[0] not in own):
        inner, _ = _unwrap(f.annotation)
        if _is_settings(inner):
            out += [(n, sub, (name, *p)) for n, sub, p in cli_fields(inner)]
        elif opt(f).cli:
            out.append((name, f, (name,)))
    return out


def _range(f: FieldInfo) -> dict[str, Any]:
    """Closed bounds for Typer (shown in --help, checked while parsing); open ones (gt, lt) are
    left to the class's own validation."""
    bounds: dict[str, Any] = {}
    for m in f.metadata:
        if getattr(m, "ge", None) is not None:
            bounds["min"] = m.ge
        if getattr(m, "le", None) is not None:
            bounds["max"] = m.le
    return bounds


def _parameter(name: str, f: FieldInfo, taken: set[str]) -> inspect.Parameter:
    import typer

    o = opt(f)
    inner, optional = _unwrap(f.annotation)
    required = f.is_required()
    default = ... if required else f.get_default(call_default_factory=True)
    aliases = [a for a in o.flags if not (a.startswith("-") and not a.startswith("--") and a in taken)]
    taken.update(aliases)
    kw: dict[str, Any] = {"help": (f.description or "").strip() or None}
    annotation: Any = inner
    if inner in (int, float):
        kw.update(_range(f))
    elif get_origin(inner) is list:
        annotation = list[get_args(inner)[0]]
    if o.argument:
        info = typer.Argument(**kw)
    else:
        names = [flag(name)] if not (inner is bool and default is True) else [f"{flag(name)}/--no-{flag(name)[2:]}"]
        info = typer.Option(*names, *aliases, **kw)
    if optional and not required:
        annotation = annotation | None
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, info])


def build(cls: type[Settings], values: dict[str, Any]):
    """The settings from flattened command-line values; a bad value is one line naming its flag."""
    nested: dict[str, Any] = {}
    for name, _, path in cli_fields(cls):
        if name not in values:
            continue
        d = nested
        for p in path[:-1]:
            d = d.setdefault(p, {})
        d[path[-1]] = values[name]
    try:
        return cls.model_validate(nested)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [p for p in err["loc"] if isinstance(p, str)]
        name = loc[-1] if loc else ""
        got = err.get("input")
        shown = f" {got}" if not isinstance(got, dict) and got is not None else ""
        raise UserError(f"{flag(name)}{shown}: {err['msg'].removeprefix('Value error, ')}") from None


def command(group, name: str | None, cls: type[Settings], *, context: bool = False, callback: bool = False,
            **typer_kw: Any) -> Callable:
    """Register ``fn(cfg)`` as the command ``name`` of the Typer ``group``, its options made from ``cls``.

    ``callback``: the group's own callback (``gpt4llm compare`` with sub-commands ``export`` and
    ``report``); its fields are then all optional on the command line and are checked only when no
    sub-command is invoked. ``context``: ``fn(ctx, cfg)``.
    """

    def register(fn: Callable) -> Callable:
        import typer

        taken: set[str] = set()
        params = []
        if context or callback:
            params.append(inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context))
        for fname, f, _ in cli_fields(cls):
            p = _parameter(fname, f, taken)
            if callback and p.default is ...:
                base, info = get_args(p.annotation)
                p = p.replace(default=None, annotation=Annotated[base | None, info])
            params.append(p)

        def wrapper(*args: Any, **values: Any) -> Any:
            ctx = args[0] if args else values.pop("ctx", None)
            if callback and ctx is not None and ctx.invoked_subcommand is not None:
                return None
            cfg = build(cls, {k: v for k, v in values.items() if not (callback and v is None)})
            return fn(ctx, cfg) if (context or callback) else fn(cfg)

        wrapper.__signature__ = inspect.Signature(params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        wrapper.__doc__ = fn.__doc__
        wrapper.__name__ = fn.__name__
        if callback:
            group.callback(invoke_without_command=True, **typer_kw)(wrapper)
        else:
            group.command(name, **typer_kw)(wrapper)
        return fn

    return register


def section(cls: type[Settings], name: str | None = None) -> type[BaseModel]:
    """The pipeline's YAML section of a stage: the class's fields minus the pipeline-owned ones,
    with the same types, defaults, checks (field validators included) and docstrings."""
    from pydantic import field_validator

    fields = {n: (f.annotation, f) for n, f in cls.model_fields.items() if not opt(f).pipeline}
    validators = {}
    for vname, dec in cls.__pydantic_decorators__.field_validators.items():
        names = [n for n in dec.info.fields if n in fields]
        if names:
            validators[vname] = field_validator(*names, mode=dec.info.mode)(dec.func.__func__
                                                                             if hasattr(dec.func, "__func__") else dec.func)
    model = create_model(name or f"{cls.__name__.removesuffix('Settings')}Stage",
                         __config__=ConfigDict(extra="forbid", frozen=True, protected_namespaces=()),
                         __validators__=validators, **fields)
    model.__doc__ = cls.__doc__
    model.settings_class = cls
    return model


def pipeline_owned(cls: type[Settings]) -> list[str]:
    """The fields the pipeline sets (not keys of the stage's YAML section)."""
    return [n for n, f in cls.model_fields.items() if opt(f).pipeline]


# ---------------------------------------------------------------- commands made on first use
#
# ``gpt4llm --help`` must not import every stage (their settings classes alone cost a few ms
# each; together with what they import, most of a second). So commands are registered by path
# with the import path of their settings class, and a command's options are made only when that
# command is run or asked for its --help; a group's help lists its commands from the registry.


class Entry:
    def __init__(self, fn: Callable | None, settings: str | None, help: str, callback: bool = False):
        self.fn, self.settings, self.help, self.callback = fn, settings, help, callback


ENTRIES: dict[tuple[str, ...], Entry] = {}


def _load(path: str):
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def register(path: str, settings: str | None = None, *, callback: bool = False) -> Callable:
    """Register ``fn(cfg)`` as the command ``path`` ("train sft"), its options from the class at
    ``settings`` ("gpt4llm.train.sft:SFTSettings"). ``callback``: the group's own command
    (``gpt4llm compare`` with sub-commands), ``fn(ctx, cfg)``."""

    def add(fn: Callable) -> Callable:
        ENTRIES[tuple(path.split())] = Entry(fn, settings, (fn.__doc__ or "").strip().splitlines()[0], callback)
        return fn

    return add


def group(path: str, help: str) -> None:
    ENTRIES[tuple(path.split())] = Entry(None, None, help)


def _children(prefix: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(p[len(prefix)] for p in ENTRIES if len(p) > len(prefix) and p[:len(prefix)] == prefix))


def _build(prefix: tuple[str, ...]):
    """The click command (or group) at ``prefix``, made now."""
    import typer
    import typer.main

    e = ENTRIES[prefix]
    name = prefix[-1]
    if e.fn is None and not e.callback:  # a plain group: its commands are made on first use too
        return lazy_group_class(prefix)(name=name, help=e.help, no_args_is_help=True, rich_markup_mode=None)
    t = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=e.help, rich_markup_mode=None)
    if e.callback:
        command(t, None, _load(e.settings), callback=True)(e.fn)
        for child in _children(prefix):  # a group with options of its own: its few commands are made with it
            sub = ENTRIES[(*prefix, child)]
            if sub.settings:
                command(t, child, _load(sub.settings))(sub.fn)
            else:
                t.command(child)(sub.fn)
    elif e.settings:
        command(t, name, _load(e.settings))(e.fn)
    else:
        t.command(name)(e.fn)
    cmd = typer.main.get_command(t)
    cmd.name = name
    return cmd


def lazy_group_class(prefix: tuple[str, ...] = ()):
    """A Typer group class listing the commands registered under ``prefix``, made on first use."""
    from typer.core import TyperCommand, TyperGroup

    class LazyGroup(TyperGroup):
        listing = False  # while the group's help is written: short placeholders, nothing imported

        def list_commands(self, ctx):
            return _children(prefix)

        def get_command(self, ctx, name):
            key = (*prefix, name)
            if key not in ENTRIES:
                return None
            if LazyGroup.listing:
                return TyperCommand(name=name, help=ENTRIES[key].help)
            return _build(key)

        def format_help(self, ctx, formatter):
            LazyGroup.listing = True
            try:
                return super().format_help(ctx, formatter)
            finally:
                LazyGroup.listing = False

    return LazyGroup
