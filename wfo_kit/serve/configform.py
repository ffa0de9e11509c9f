"""The configuration form, generated from the configuration model's JSON schema.

Nothing here is written per setting: :func:`form_sections` walks ``Config.model_json_schema()``
(what ``GET /config/schema`` serves) and turns each property into an input by its schema type, so
a setting added to :class:`wfo_kit.config.Config` appears in the form with its description,
unit and default. Nested models are sections (folded, as in the model); a model met again inside
itself (a table source's ``fallback``), unions of shapes, lists of models and mappings are one
YAML value each.

A submitted form becomes a parameters document holding only the settings the user filled in
(:func:`document_from_form`); it is then resolved exactly as a submission over the API is
(:mod:`wfo_kit.serve.submissions`: confined to the data root), which reports the fields at fault
and the effective value and source of every setting (:func:`check_form`).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from wfo_kit.config import Config, _load_yaml, mask_secrets
from wfo_kit.errors import WfoError

Kind = Literal["number", "integer", "text", "bool", "choice", "choices", "yaml"]

#: Units as the model's descriptions state them (first match wins): shown beside each input.
UNITS: tuple[tuple[str, str], ...] = (
    (r"\bdecimal\b", "decimal (0.09 = 9 %)"),
    (r"\bseconds\b", "seconds"),
    (r"\byears\b", "years"),
    (r"\bmoney\b", "money (units of the input tables)"),
    (r"\bshare\b", "share (0-1)"),
    (r"\bEV/EBITDA\b", "multiple (x EBITDA)"),
)


@dataclass(frozen=True)
class FormField:
    """One input of the form: a setting by its dotted key."""

    key: str
    kind: Kind
    description: str
    unit: str | None
    default: Any
    nullable: bool = False
    options: tuple[str, ...] = ()
    fmt: str | None = None  # the schema's format (``date``)

    @property
    def label(self) -> str:
        return self.key.rpartition(".")[2]


@dataclass(frozen=True)
class FormSection:
    """A nested model: its own fields, then its sub-sections."""

    key: str
    description: str
    fields: tuple[FormField, ...] = ()
    sections: tuple[FormSection, ...] = field(default_factory=tuple)
    #: An optional model set by default (a Monte Carlo driver): the form can switch it off.
    can_unset: bool = False

    @property
    def label(self) -> str:
        return self.key.rpartition(".")[2] or "configuration"

    def walk_sections(self) -> list[FormSection]:
        return [self, *(s for sub in self.sections for s in sub.walk_sections())]

    def walk(self) -> list[FormField]:
        """Every field of this section and its sub-sections, in form order."""
        return [*self.fields, *(f for s in self.sections for f in s.walk())]


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True)
class FormCheck:
    """What a submitted form amounts to: errors, or a document and its effective values."""

    document: dict[str, Any]
    errors: tuple[FieldError, ...] = ()
    effective: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.errors


def unit_of(description: str) -> str | None:
    """The unit a setting's description states, if any.

    >>> unit_of("pre-tax cost of debt, decimal, 0 <= x < 1")
    'decimal (0.09 = 9 %)'
    >>> unit_of("tries in all, the first included") is None
    True
    """
    return next((unit for pattern, unit in UNITS if re.search(pattern, description)), None)


@functools.cache
def form_sections() -> tuple[FormSection, ...]:
    """The form: one section per top-level section of the configuration model."""
    schema = Config.model_json_schema()
    defaults = _flatten_defaults(Config().model_dump(mode="json"))
    root = _section("", schema, schema.get("$defs", {}), defaults, stack=())
    return root.sections


def form_fields() -> list[FormField]:
    return [f for s in form_sections() for f in s.walk()]


def _flatten_defaults(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    # Every level, not only leaves: a YAML field's default is a whole list or mapping.
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat[prefix + key] = value
        if isinstance(value, Mapping):
            flat.update(_flatten_defaults(value, f"{prefix}{key}."))
    return flat


def _deref(node: dict[str, Any], defs: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    ref = node.get("$ref")
    if ref is None:
        return None, node
    name = ref.rpartition("/")[2]
    return name, defs[name]


def _section(
    key: str,
    model: dict[str, Any],
    defs: dict[str, Any],
    defaults: dict[str, Any],
    stack: tuple[str, ...],
) -> FormSection:
    fields, sections = [], []
    for name, prop in model.get("properties", {}).items():
        dotted = f"{key}.{name}" if key else name
        branches = prop.get("anyOf") or [prop]
        shapes = [b for b in branches if b.get("type") != "null"]
        nullable = len(shapes) < len(branches)
        ref, target = _deref(shapes[0], defs) if len(shapes) == 1 else (None, {})
        if ref is not None and target.get("type") == "object" and ref not in stack:
            sub = _section(dotted, target, defs, defaults, (*stack, ref))
            described = prop.get("description") or target.get("description") or ""
            sections.append(
                FormSection(
                    dotted,
                    " ".join(described.split()),
                    sub.fields,
                    sub.sections,
                    can_unset=nullable and defaults.get(dotted) is not None,
                )
            )
            continue
        description = " ".join((prop.get("description") or target.get("description") or "").split())
        kind, options = _kind(shapes, defs)
        fields.append(
            FormField(
                key=dotted,
                kind=kind,
                description=description,
                unit=unit_of(description) if kind in ("number", "integer", "yaml") else None,
                default=prop.get("default", defaults.get(dotted)),
                nullable=nullable,
                options=options,
                fmt=shapes[0].get("format") if len(shapes) == 1 else None,
            )
        )
    return FormSection(key, "", tuple(fields), tuple(sections))


def _kind(shapes: list[dict[str, Any]], defs: dict[str, Any]) -> tuple[Kind, tuple[str, ...]]:
    """The input for a property's schema: scalars as themselves, anything else as YAML."""
    if len(shapes) != 1:
        return "yaml", ()
    shape = _deref(shapes[0], defs)[1]
    if "enum" in shape or "const" in shape:
        return "choice", tuple(str(v) for v in shape.get("enum", [shape.get("const")]))
    kind = shape.get("type")
    if kind == "array":
        items = _deref(shape.get("items", {}), defs)[1]
        if "enum" in items:
            return "choices", tuple(str(v) for v in items["enum"])
        return "yaml", ()
    scalar: dict[str, Kind] = {
        "number": "number",
        "integer": "integer",
        "boolean": "bool",
        "string": "text",
    }
    return scalar.get(kind, "yaml"), ()


# ------------------------------------------------------------------------------ form -> document


def _parse_number(text: str, *, integer: bool) -> int | float:
    number = float(text)
    if not math.isfinite(number):
        msg = "must be a finite number"
        raise ValueError(msg)
    if integer:
        if not number.is_integer():
            msg = "must be a whole number"
            raise ValueError(msg)
        return int(number)
    return number


def _value(spec: FormField, values: list[str]) -> tuple[bool, Any]:
    """(set?, value) for one field's submitted strings; raises ValueError with a reason."""
    if spec.kind == "choices":  # the page sends an empty value with every group: never absent
        chosen = [o for o in spec.options if o in values]
        return bool(values) and chosen != list(spec.default or []), chosen
    text = (values[-1] if values else "").strip()
    if not text:
        return False, None
    if spec.nullable and text == "null":
        return True, None
    if spec.kind in ("number", "integer"):
        try:
            return True, _parse_number(text, integer=spec.kind == "integer")
        except ValueError:
            kind = "whole number" if spec.kind == "integer" else "number"
            msg = f"{text[:40]!r} is not a {kind}"
            raise ValueError(msg) from None
    if spec.kind == "bool":
        if text not in ("true", "false"):
            msg = "choose true or false"
            raise ValueError(msg)
        return True, text == "true"
    if spec.kind == "choice" and text not in spec.options:
        msg = f"{text[:40]!r} is not one of {', '.join(spec.options)}"
        raise ValueError(msg)
    if spec.kind == "yaml":
        try:
            return True, _load_yaml(text)  # the config loader's bounded reader
        except Exception as exc:
            msg = f"not a YAML value: {' '.join(str(exc).split())[:120]}"
            raise ValueError(msg) from None
    return True, text


def document_from_form(
    form: Mapping[str, list[str]],
) -> tuple[dict[str, Any], list[FieldError]]:
    """The parameters document of a submitted form: only the settings that were filled in.

    Unknown form names are ignored (the form holds only generated inputs and the CSRF token).
    """
    document: dict[str, Any] = {}
    errors = []
    unset = [
        s.key
        for top in form_sections()
        for s in top.walk_sections()
        if s.can_unset and UNSET_SUFFIX in form.get(s.key, [])
    ]
    for key in unset:
        _put(document, key, None)
    for spec in form_fields():
        if any(spec.key.startswith(key + ".") for key in unset):
            continue
        try:
            given, value = _value(spec, form.get(spec.key, []))
        except ValueError as exc:
            errors.append(FieldError(spec.key, str(exc)))
            continue
        if given:
            _put(document, spec.key, value)
    return document, errors


UNSET_SUFFIX = "null"


def _put(document: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _field_of(loc: list[str], keys: set[str]) -> str:
    """The form field a pydantic error location points into (the longest matching key)."""
    parts = [p for p in loc if not p[:1].isupper()]  # drop union branch tags (TableSource, ...)
    for end in range(len(parts), 0, -1):
        dotted = ".".join(parts[:end])
        if dotted in keys:
            return dotted
        below = [k for k in keys if k.startswith(dotted + ".")]
        if below:  # a whole section (a table source): its path, else its first field
            return f"{dotted}.path" if f"{dotted}.path" in below else min(below)
    return "document"


def errors_of(exc: WfoError) -> list[FieldError]:
    """Every field a configuration error names (pydantic's list when there is one)."""
    keys = {f.key for f in form_fields()}
    details = exc.details if isinstance(exc.details, list) else []
    found = []
    for item in details:
        if isinstance(item, dict) and "loc" in item:
            where = _field_of([str(p) for p in item["loc"]], keys)
            found.append(FieldError(where, str(item.get("msg", "invalid"))))
    if not found or (exc.column and exc.column not in {e.field for e in found}):
        message = " ".join(exc.message.split())
        found.insert(0, FieldError(_field_of((exc.column or "").split("."), keys), message))
    return found


def effective_values(config: dict[str, Any], sources: dict[str, str]) -> dict[str, dict[str, Any]]:
    """key -> {value, source} for every form field, from a resolved configuration."""
    flat = _flatten_defaults(config)
    out = {}
    for spec in form_fields():
        below = [s for k, s in sources.items() if k == spec.key or k.startswith(spec.key + ".")]
        parent = spec.key
        while not below and "." in parent:  # a whole section set at once (null, a bare path)
            parent = parent.rpartition(".")[0]
            below = [sources[parent]] if parent in sources else []
        chosen = next((s for s in below if s != "default"), below[0] if below else "default")
        out[spec.key] = {"value": flat.get(spec.key), "source": _source_label(chosen)}
    return out


def _source_label(source: str) -> str:
    if source.startswith("file:") or source == "request body":
        return "this form"
    return {"env": "server environment", "security.confine": "server (confinement)"}.get(
        source, source
    )


def check_form(form: Mapping[str, list[str]], data_root: Path) -> FormCheck:
    """Resolve a submitted form as ``POST /validate`` resolves a document: confined to the data
    root. Field errors, or the effective value and source of every field."""
    import yaml

    from wfo_kit.serve import submissions

    document, errors = document_from_form(form)
    if errors:
        return FormCheck(document, tuple(errors))
    body = yaml.safe_dump(document, sort_keys=False).encode()
    run_id = f"form-{submissions.new_run_id()}"
    try:
        with submissions.spooled(data_root, run_id, body, ".yaml", keep=False) as path:
            resolved = submissions.resolve(path, data_root)
    except WfoError as exc:
        return FormCheck(document, tuple(errors_of(exc)))
    config = _without_root(mask_secrets(resolved.config.model_dump(mode="json")), data_root)
    return FormCheck(document, (), effective_values(config, resolved.sources))


DATA_ROOT_LABEL = "<data root>"


def _without_root(value: Any, data_root: Path) -> Any:
    """The effective values as a user sees them: paths under the data root relative to it (the
    page never shows the server's folders, as problem details do not)."""
    root = str(Path(data_root).resolve())
    if isinstance(value, dict):
        return {k: _without_root(v, data_root) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_root(v, data_root) for v in value]
    if isinstance(value, str) and (value == root or value.startswith(root + "/")):
        return DATA_ROOT_LABEL + value[len(root) :]
    return value


def to_yaml(document: dict[str, Any]) -> str:
    """The document as a parameters file."""
    import yaml

    head = "# parameters file written by the wfo serve configuration form\n"
    return head + (yaml.safe_dump(document, sort_keys=False) if document else "{}\n")


def display(value: Any) -> str:
    """A value as the form shows it (defaults and effective values): YAML flow style.

    >>> display(None), display(True), display(0.02), display({"dcf": 0.5, "asset": 0.5})
    ('null', 'true', '0.02', '{dcf: 0.5, asset: 0.5}')
    """
    import yaml

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()


__all__ = [
    "FieldError",
    "FormCheck",
    "FormField",
    "FormSection",
    "check_form",
    "display",
    "document_from_form",
    "effective_values",
    "form_fields",
    "form_sections",
    "to_yaml",
    "unit_of",
]
