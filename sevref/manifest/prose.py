"""Schema errors in prose: the first violation of the manifest schema, as one sentence.

jsonschema's messages speak of instances and validators; a release engineer
wants the file, line and column, the key, what was expected and what was found.
"""

from __future__ import annotations

import json
from functools import cache

import jsonschema

from sevref._resources import resource
from sevref.errors import ManifestError
from sevref.manifest.loader import Document, json_pointer
from sevref.manifest.model import NO_POLICY
from sevref.validate import describe_error
from sevref.values import show

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


_URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s]*)?$"
"""The manifest schema's ``url`` pattern (``#/$defs/url``), said in words."""
_WHY = {"deb_sha256": " (nothing else authenticates a downloaded package)"}


def _manifest_words(error: jsonschema.ValidationError) -> str | None:
    """What only a manifest's errors say: YAML's numbers that were meant as text, its URL pattern in words, and why a key needs another."""
    found, value = error.instance, error.validator_value
    kinds = value if isinstance(value, list) else [value]
    if (
        error.validator == "type"
        and "string" in kinds
        and isinstance(found, (int, float))
        and not isinstance(found, bool)
    ):
        return describe_error(error) + " (a number: quote it to mean text)"  # YAML reads 7.0 and 0x10 as numbers
    if error.validator == "pattern" and value == _URL_PATTERN:
        return f"expected an http:// or https:// URL without a user name or password, found {show(found)}"
    if error.validator == "required" and value == ["policy"] and isinstance(found, dict) and "policy" not in found:
        return NO_POLICY  # #/$defs/expected
    if error.validator == "dependentRequired" and isinstance(found, dict) and isinstance(value, dict):
        for key, needed in value.items():
            missing = [name for name in needed if key in found and name not in found]
            if missing:
                return f"{', '.join(missing)} is missing; expected it with {key}{_WHY.get(missing[0], '')}"
    return None


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
        raise ManifestError(f"{document.where(pointer)}: {pointer or '/'}: {describe_error(error, _manifest_words)}")
