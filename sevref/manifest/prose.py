"""Schema errors in prose: the first violation of the manifest schema, as one sentence.

jsonschema's messages speak of instances and validators; a release engineer
wants the file, line and column, the key, what was expected and what was found.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

import jsonschema

from sevref._resources import resource
from sevref.errors import ManifestError
from sevref.manifest.loader import Document, json_pointer

__all__ = ["check_schema"]


def _is_integer(_checker: object, value: object) -> bool:
    # JSON Schema counts 2.0 as an integer; the reader takes integers as Python ints.
    return isinstance(value, int) and not isinstance(value, bool)


_Validator: type[jsonschema.Draft202012Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@cache
def _schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(resource("schema", "manifest.schema.json").read_text(encoding="utf-8"))
    return _Validator(schema)


def _show(value: object) -> str:
    if isinstance(value, (dict, list)):
        return type(value).__name__
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:77] + "..."


_URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s]*)?$"
"""The manifest schema's ``url`` pattern (``#/$defs/url``), said in words."""
_WHY = {"deb_sha256": " (nothing else authenticates a downloaded package)"}
_TYPE_NAMES = {"string": "text", "integer": "an integer", "array": "a list", "object": "a mapping", "null": "null"}


def _describe(error: jsonschema.ValidationError) -> str:
    """One sentence for the most useful schema error: expected, then found."""
    found = error.instance
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    value: Any = error.validator_value
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(found) - set(allowed)) if isinstance(found, dict) else []
        return f"unknown key {extra[0] if extra else '?'!r}; expected one of {', '.join(allowed)}"
    if error.validator == "required":
        return str(error.message).replace(" is a required property", "") + " is missing; expected it here"
    if error.validator == "type":
        kinds = value if isinstance(value, list) else [value]
        hint = " (a number: quote it to mean text)" if isinstance(found, (int, float)) and "string" in kinds else ""
        return f"expected {' or '.join(_TYPE_NAMES.get(k, str(k)) for k in kinds)}, found {_show(found)}{hint}"
    if error.validator in ("enum", "const"):
        options = value if error.validator == "enum" else [value]
        return f"expected one of {', '.join(_show(o) for o in options)}, found {_show(found)}"
    if error.validator == "pattern":
        if value == _URL_PATTERN:
            return f"expected an http:// or https:// URL without a user name or password, found {_show(found)}"
        return f"expected text matching {value}, found {_show(found)}"
    if error.validator in ("minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength", "minProperties"):
        return f"expected {error.validator} {value}, found {_show(found)}"
    if error.validator == "dependentRequired" and isinstance(found, dict) and isinstance(value, dict):
        for key, needed in value.items():
            missing = [name for name in needed if key in found and name not in found]
            if missing:
                why = _WHY.get(missing[0], "")
                return f"{', '.join(missing)} is missing; expected it with {key}{why}"
    if error.validator == "not" and isinstance(value, dict) and "required" in value:
        return f"expected one of {', '.join(value['required'])}, found both"
    if error.validator == "oneOf" and error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        if deepest.absolute_path:
            return _describe(deepest)
        return f"expected {schema.get('description', 'one of the allowed forms')}, found {_show(found)}"
    return f"{error.message}"


def check_schema(document: Document) -> None:
    """Check a document against ``schema/manifest.schema.json``.

    Args:
        document: the parsed file.

    Raises:
        ManifestError: ``file:line:column: /json/pointer: expected ..., found ...``
            for the first error in document order.
    """
    errors = sorted(
        _schema_validator().iter_errors(document.data),
        key=lambda e: (document.where(json_pointer(e.absolute_path)), str(e.message)),
    )
    if errors:
        error = jsonschema.exceptions.best_match(errors) if len(errors) > 1 else errors[0]
        pointer = json_pointer(error.absolute_path)
        raise ManifestError(f"{document.where(pointer)}: {pointer or '/'}: {_describe(error)}")
