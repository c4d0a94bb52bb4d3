"""Judging published data: schemas and invariants. Nothing here changes what it checks.

Each kind of published file has a JSON Schema in ``schema/`` (draft 2020-12,
``$id`` ``urn:sevref:schema:<kind>:<version>``, :data:`sevref.records.SCHEMAS`). A build checks every group record as
it is produced and every file once written; a verifier checks what it loads.

A publication can hold millions of digests, and a general JSON Schema
validator spends about 10 µs on each. The few long lists (a group's entries, a
digest shard's table, a firmware's candidates, the index's files) are therefore checked by a
dedicated function that implements exactly their item schema, while the
validator checks the rest of the document and the first item of each list.
The tests hold each dedicated function to its schema on valid and broken items.
A build checks the lists it writes as the bytes it writes, one regular
expression over each (:data:`WRITTEN`, which the tests hold to those functions).

Some rules a JSON Schema cannot say are checked here too, after the schema:
the vCPU counts of a group's lifecycle ``exceptions`` (and of a catalog row's)
are counts the group has, each in at most one exception, in order, and an
exception never repeats the group's own status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import Any

import jsonschema
from referencing import Registry, Resource

from sevref import __version__
from sevref._resources import resource
from sevref.digest import MAX_VCPUS
from sevref.errors import LayoutError
from sevref.ids import ENTRY_ID
from sevref.records._common import SCHEMA_IDS, VERSIONS, schema_version
from sevref.values import show

__all__ = [
    "KINDS",
    "LONG_LISTS",
    "OTHER_KINDS",
    "TYPE_NAMES",
    "WRITTEN",
    "check_document",
    "check_group",
    "check_written",
    "describe_error",
    "exception_problem",
    "known_only",
    "validator",
]

KINDS = ("index", "publication", "groups", "digests", "firmware", "catalog", "changes")
"""The kinds of published JSON file, each with ``schema/<kind>.schema.json``."""
OTHER_KINDS = ("keys", "timestamp", "state")
"""JSON documents with a schema that the index does not list: the payloads of keys
documents and timestamps (signed in their envelopes), and the verifier's state."""

_DIGEST = re.compile(r"[0-9a-f]{64}|[0-9a-f]{96}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PATH = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*")
_STATUSES = ("active", "deprecated", "revoked")


def _entry_pair(item: Any) -> str | None:
    """groups.schema.json #/$defs/group/properties/entries/items."""
    if type(item) is not list or len(item) != 2:
        return "expected [vcpus, digest]"
    count, digest = item
    if count is not None and (type(count) is not int or not 1 <= count <= MAX_VCPUS):
        return f"vcpus {count!r}: expected null or 1..{MAX_VCPUS}"
    if type(digest) is not str or not _DIGEST.fullmatch(digest):
        return f"digest {digest!r}: expected 64 or 96 lowercase hex digits"
    return None


def _candidate(item: Any) -> str | None:
    """firmware.schema.json #/properties/candidates/items."""
    if type(item) is not list or len(item) != 3:
        return "expected [entry id, mode, digest]"
    entry, mode, digest = item
    if type(entry) is not str or not ENTRY_ID.fullmatch(entry):
        return f"entry id {entry!r}: expected a group id with an optional -NNNN"
    if mode not in ("sev", "sev-es"):
        return f"mode {mode!r}: expected sev or sev-es"
    if type(digest) is not str or not _SHA256.fullmatch(digest):
        return f"digest {digest!r}: expected 64 lowercase hex digits"
    return None


def _digest_row(key: Any, value: Any) -> str | None:
    """digests.schema.json #/properties/digests (propertyNames, additionalProperties)."""
    if type(key) is not str or not _DIGEST.fullmatch(key):
        return f"key {key!r}: expected 64 or 96 lowercase hex digits"
    if type(value) is not list or not value:
        return "expected a non-empty list of entry ids"
    for entry in value:
        if type(entry) is not str or not ENTRY_ID.fullmatch(entry):
            return f"entry id {entry!r}: expected a group id with an optional -NNNN"
    return None


def _file_ref(item: Any) -> str | None:
    """index.schema.json #/properties/files/items."""
    if type(item) is not dict or item.keys() != {"path", "sha256", "size"}:
        return "expected {path, sha256, size}"
    path, sha256, size = item["path"], item["sha256"], item["size"]
    if type(path) is not str or not _PATH.fullmatch(path):
        return f"path {path!r}: expected a relative path of lowercase names"
    if type(sha256) is not str or not _SHA256.fullmatch(sha256):
        return f"sha256 {sha256!r}: expected 64 lowercase hex digits"
    if type(size) is not int or size < 0:
        return f"size {size!r}: expected an integer >= 0"
    return None


LONG_LISTS: Mapping[str, tuple[str, Callable[..., str | None]]] = {
    "group": ("entries", _entry_pair),
    "firmware": ("candidates", _candidate),
    "digests": ("digests", _digest_row),
    "index": ("files", _file_ref),
}
"""Kind -> (member, checker) of the long list the validator samples and the checker covers."""
_KEYED = frozenset({"digests"})  # kinds whose long list is an object: their checker takes (key, value)

_ENTRY = ENTRY_ID.pattern
_HEX_DIGEST = "[0-9a-f]{64}(?:[0-9a-f]{32})?"  # _DIGEST
_VCPUS = "[1-9][0-9]{0,2}|[1-3][0-9]{3}|40[0-8][0-9]|409[0-6]"  # 1..MAX_VCPUS (4096), as _entry_pair says


def _written(item: str, start: str = r"\[", end: str = r"\]") -> re.Pattern[bytes]:
    return re.compile(rf"{start}(?:{item}(?:,{item})*)?{end}".encode("ascii"))


WRITTEN: Mapping[str, re.Pattern[bytes]] = {
    "group": _written(rf'\[(?:null|{_VCPUS}),"{_HEX_DIGEST}"\]'),
    "firmware": _written(rf'\["{_ENTRY}","sev(?:-es)?","[0-9a-f]{{64}}"\]'),
    "digests": _written(rf'"{_HEX_DIGEST}":\["{_ENTRY}"(?:,"{_ENTRY}")*\]', r"\{", r"\}"),
}
"""Kind -> its long list in canonical JSON, every item of which its checker accepts (the tests hold each
pattern to its checker): a build checks the bytes it writes in one pass, at a fraction of the cost of
checking items one by one (a large release writes millions)."""


def _items_problem(kind: str, items: Any) -> tuple[str, str] | None:
    """The first item of a long list that its checker refuses: (JSON path, problem)."""
    member, checker = LONG_LISTS[kind]
    if isinstance(items, list) and kind not in _KEYED:
        problems = ((f"/{member}/{i}", checker(item)) for i, item in enumerate(items))
    elif isinstance(items, dict) and kind in _KEYED:
        problems = ((f"/{member}/{key}", checker(key, value)) for key, value in items.items())
    else:
        return None  # another type: the validator refuses it
    return next(((path, problem) for path, problem in problems if problem is not None), None)


def check_written(kind: str, written: bytes, what: str) -> None:
    """Check a long list as written: its canonical JSON, in one pass; the first bad item named if it fails.

    Args:
        kind: one of :data:`WRITTEN`.
        written: the canonical JSON of the list (for ``digests``, of the object).
        what: the file, to name in the error.

    Raises:
        LayoutError: the first item its checker refuses, or bytes that are not the list's canonical JSON.
    """
    if WRITTEN[kind].fullmatch(written) is not None:
        return
    member = LONG_LISTS[kind][0]
    try:
        items = json.loads(written)
    except ValueError as error:
        raise LayoutError(f"{what}: /{member}: not JSON ({error})") from error
    found = _items_problem(kind, items)
    if found is not None:
        raise LayoutError(f"{what}: {found[0]}: {found[1]}")
    raise LayoutError(f"{what}: /{member}: not in canonical JSON form")


def _runs(runs: list[list[int]], counts: Callable[[int], bool], what: str) -> str | None:
    """Runs in canonical form (ascending, apart, first <= last) of counts that ``counts`` accepts."""
    last = -1
    for first, end in runs:
        if first > end or first <= last + 1:
            return f"{what}: run [{first}, {end}] is not after the run before it with a gap, or ends before it starts"
        missing = next((n for n in range(first, end + 1) if not counts(n)), None)
        if missing is not None:
            return f"{what}: vCPU count {missing} has no entry in this configuration"
        last = end
    return None


def exception_problem(record: Mapping[str, Any], catalog: bool = False) -> str | None:
    """What is wrong with a schema-valid group record's (or catalog row's) lifecycle exceptions, if anything.

    Args:
        record: a group record, or a catalog row with ``catalog``.
        catalog: check a catalog row (its exceptions name a status only, one per status, in status order).

    Returns:
        The problem, or None.
    """
    exceptions = record["exceptions"]
    if catalog:
        runs = record["vcpus"] or []
        counts: set[int] = {n for first, last in runs for n in range(first, last + 1)}
        own: tuple[Any, ...] = (record["status"],)
        order = [_STATUSES.index(e["status"]) for e in exceptions]
    else:
        counts = {count for count, _ in record["entries"] if count is not None}
        own = (record["status"], record["status_reason"], record["successor"], record.get("status_since"))
        order = [e["vcpus"][0][0] for e in exceptions]
    if order != sorted(set(order)):
        return "/exceptions: expected them in " + ("status order, one per status" if catalog else "vCPU order")
    seen: dict[int, int] = {}
    for index, exception in enumerate(exceptions):
        what = f"/exceptions/{index}"
        problem = _runs(exception["vcpus"], counts.__contains__, what)
        if problem is not None:
            return problem
        state = (
            (exception["status"],)
            if catalog
            else (
                exception["status"],
                exception["status_reason"],
                exception["successor"],
                exception.get("status_since"),
            )
        )
        if state == own:
            return f"{what}: status {exception['status']} is the configuration's own; expected another status or reason"
        for first, last in exception["vcpus"]:
            for count in range(first, last + 1):
                if count in seen:
                    return f"{what}: vCPU count {count} is also in /exceptions/{seen[count]}; expected each entry once"
                seen[count] = index
    return None


@cache
def _registry() -> Registry[Any]:
    resources = []
    for kind in (*KINDS, *OTHER_KINDS, "common"):
        contents = json.loads(resource("schema", f"{kind}.schema.json").read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def _inline(node: Any, base: str, registry: Registry[Any]) -> Any:
    """Replace every ``$ref`` by what it points to (sevref's schemas are not recursive).

    Resolving references costs the validator more than checking the value, and
    a publication has thousands of records.
    """
    if isinstance(node, list):
        return [_inline(item, base, registry) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        reference = node["$ref"]
        uri = base + reference if reference.startswith("#") else reference
        document, _, fragment = uri.partition("#")
        target = registry.resolver(document).lookup("#" + fragment).contents
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline(merged, document, registry)
    return {
        key: value if key in ("const", "enum") else _inline(value, base, registry)
        for key, value in node.items()
        if key not in ("$id", "$defs", "$schema")
    }


_END_ANCHOR = re.compile(r"(?<!\\)\$")


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(_END_ANCHOR.sub(r"\\Z", pattern))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    r"""``pattern`` as ECMA-262 (JSON Schema's regex dialect) reads ``$``: the end of the text only.

    Python's ``$`` also matches before a final newline, so ``"2026-01-01T00:00:00Z\n"``
    would pass a time's pattern, and the same bytes fail another verifier's schema.
    """
    if isinstance(instance, str) and not _compiled(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Strict = jsonschema.validators.extend(  # type: ignore[no-untyped-call]  # the stubs leave it untyped
    jsonschema.Draft202012Validator, {"pattern": _pattern}
)


@cache
def validator(kind: str) -> jsonschema.Draft202012Validator:
    """The validator of one kind of file, or ``group`` for one group record.

    Args:
        kind: one of :data:`KINDS` or :data:`OTHER_KINDS`, or ``group``.

    Returns:
        A validator for the schema with its references inlined, reading
        patterns as ECMA-262 does.
    """
    registry = _registry()
    uri = (
        f"{SCHEMA_IDS['groups']}#/$defs/group"
        if kind == "group"
        else SCHEMA_IDS.get(kind, f"urn:sevref:schema:{kind}:1")
    )
    strict: jsonschema.Draft202012Validator = _Strict(_inline({"$ref": uri}, "", registry))
    return strict


TYPE_NAMES = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}
"""JSON Schema's type names, as an error message says them."""


_BOUNDS = {
    "minimum": ("at least {}", ""),
    "maximum": ("at most {}", ""),
    "exclusiveMinimum": ("more than {}", ""),
    "exclusiveMaximum": ("less than {}", ""),
    "minItems": ("at least {}", " item"),
    "maxItems": ("at most {}", " item"),
    "minLength": ("at least {}", " character"),
    "maxLength": ("at most {}", " character"),
    "minProperties": ("at least {}", " key"),
    "maxProperties": ("at most {}", " key"),
}
"""A bound's words, and what it counts (made plural past one)."""


def describe_error(
    error: jsonschema.ValidationError, special: Callable[[jsonschema.ValidationError], str | None] | None = None
) -> str:
    """One sentence for a schema error: what was expected, then what was found.

    jsonschema's messages speak of instances and validators; whoever reads the
    error wants what the place should hold and what it holds. A manifest's
    errors and a publication's (and a keys document's, a state's) are said alike.

    Args:
        error: the error (``best_match`` of a validation).
        special: a reader's own wording for some errors (None: use the general one), asked first,
            also for the error inside a ``oneOf``.

    Returns:
        E.g. ``expected null or text, found 5``.
    """
    if special is not None:
        text = special(error)
        if text is not None:
            return text
    found = error.instance
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    value: Any = error.validator_value
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(found) - set(allowed)) if isinstance(found, dict) else []
        return f"unknown key {extra[0] if extra else '?'!r}; expected one of {', '.join(allowed)}"
    if kind == "required":
        return str(error.message).replace(" is a required property", "") + " is missing; expected it here"
    if kind == "type":
        kinds = value if isinstance(value, list) else [value]
        return f"expected {' or '.join(TYPE_NAMES.get(k, str(k)) for k in kinds)}, found {show(found)}"
    if kind in ("enum", "const"):
        options = value if kind == "enum" else [value]
        return f"expected one of {', '.join(show(o) for o in options)}, found {show(found)}"
    if kind == "pattern":
        printable = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))  # a newline as \\n
        return f"expected text matching {printable}, found {show(found)}"
    if kind in _BOUNDS:
        words, unit = _BOUNDS[kind]
        return f"expected {words.format(value)}{unit}{'s' if unit and value != 1 else ''}, found {show(found)}"
    if kind == "not" and isinstance(value, dict) and "required" in value:
        return f"expected one of {', '.join(value['required'])}, found both"
    if kind in ("oneOf", "anyOf"):
        return _describe_alternatives(error, special)
    return str(error.message)


def _describe_alternatives(
    error: jsonschema.ValidationError, special: Callable[[jsonschema.ValidationError], str | None] | None
) -> str:
    """A ``oneOf``/``anyOf`` that no form (or, for ``oneOf``, more than one) matched, said by what the forms ask."""
    found, forms = error.instance, error.validator_value if isinstance(error.validator_value, list) else []
    keys = [
        f["required"][0] for f in forms if isinstance(f, dict) and list(f) == ["required"] and len(f["required"]) == 1
    ]
    if forms and len(keys) == len(forms) and isinstance(found, dict):  # forms told apart by one key each
        present = [key for key in keys if key in found]
        return f"expected one of {', '.join(keys)}, found {' and '.join(present) if present else 'none of them'}"
    context = list(error.context or ())
    if not context:  # oneOf: more than one form matched
        return f"expected a value of exactly one of {len(forms)} forms, found {show(found)}, which fits more than one"
    depth = len(error.absolute_path)
    deeper = [e for e in context if len(e.absolute_path) > depth]
    if deeper:  # a form of the right shape that fails further in: that failure
        return describe_error(max(deeper, key=lambda e: len(e.absolute_path)), special)
    typed = [e for e in context if e.validator != "type"]
    if typed:  # the form(s) of the value's type: what the first asks for
        return describe_error(typed[0], special)
    kinds = [
        k for e in context for k in (e.validator_value if isinstance(e.validator_value, list) else [e.validator_value])
    ]
    names = list(dict.fromkeys(TYPE_NAMES.get(str(k), str(k)) for k in kinds))  # forms that differ by type alone
    return f"expected {' or '.join(names)}, found {show(found)}"


def _check(kind: str, data: Mapping[str, Any], what: str, written: bytes | None = None) -> None:
    sampled: Mapping[str, Any] = data
    long = LONG_LISTS.get(kind)
    if long is not None and isinstance(data, dict):
        member = long[0]
        items = data.get(member)
        if isinstance(items, list) and kind not in _KEYED:
            sampled = {**data, member: items[:1]}
        elif isinstance(items, dict) and kind in _KEYED:
            sampled = {**data, member: dict(list(items.items())[:1])}
        if written is not None:
            check_written(kind, written, what)
        else:
            found = _items_problem(kind, items)
            if found is not None:
                raise LayoutError(f"{what}: {found[0]}: {found[1]}")
    error = jsonschema.exceptions.best_match(validator(kind).iter_errors(sampled))
    if error is not None:
        path = "/" + "/".join(str(p) for p in error.absolute_path)
        raise LayoutError(f"{what}: {path}: {describe_error(error)}")
    if kind == "group":
        problem = exception_problem(data)
        if problem is not None:
            raise LayoutError(f"{what}: {problem}")
    elif kind == "catalog":
        for index, row in enumerate(data["configurations"]):
            problem = exception_problem(row, catalog=True)
            if problem is not None:
                raise LayoutError(f"{what}: /configurations/{index}{problem}")


def check_document(kind: str, data: Mapping[str, Any], what: str, written: bytes | None = None) -> Mapping[str, Any]:
    """Check a whole published file against its schema, and give it as this sevref reads it.

    A file of a newer minor version of its kind's major (``urn:sevref:schema:groups:2.1`` read by a
    sevref that knows 2.0) is checked without the members this sevref's schema does not know
    (:func:`known_only`): a minor only adds members a verifier may ignore. A file of another major
    is refused, naming the version (``docs/compatibility.md``).

    Args:
        kind: which schema (one of :data:`KINDS` or :data:`OTHER_KINDS`).
        data: the parsed file.
        what: how to name it in the error.
        written: the canonical JSON of its long list (:data:`LONG_LISTS`) as it is written, checked
            instead of the items of ``data``'s list (:data:`WRITTEN`), which the schema then samples.

    Returns:
        The document: ``data`` itself, or for a newer minor a copy without the members this sevref does not know.

    Raises:
        LayoutError: the first violation, with its JSON path.
    """
    if kind in VERSIONS and isinstance(data, dict) and _newer_minor(kind, data.get("schema"), what):
        data = known_only(kind, data)
    read = data
    if kind == "groups" and isinstance(data, dict) and isinstance(data.get("groups"), list):
        for index, record in enumerate(data["groups"]):
            _check("group", record, f"{what}: /groups/{index}")
        data = {**data, "groups": []}
    _check(kind, data, what, written)
    return read


def _newer_minor(kind: str, value: object, what: str) -> bool:
    """Whether a file's ``schema`` is a minor of this sevref's major newer than it knows; another major is refused."""
    version = schema_version(value)
    if version is None or version[0] != kind:
        return False  # the schema names what it expects
    major, minor = VERSIONS[kind]
    if version[1] != major:
        raise LayoutError(
            f"{what}: /schema: {value} is major version {version[1]} of the {kind} format; this sevref "
            f"({__version__}) reads major version {major} ({SCHEMA_IDS[kind]}): "
            + ("use a sevref that reads it" if version[1] > major else "the publisher must rebuild it")
            + " (docs/compatibility.md)"
        )
    return version[2] > minor


def known_only(kind: str, data: Any) -> Any:
    """A document without the members its kind's schema does not know, as a verifier reads a newer minor.

    Members the schema closes (``additionalProperties: false``) but does not list are left out, at every
    depth; in a ``oneOf`` or ``anyOf`` the first form the pruned value fits decides. Known members are
    kept as they are, so the schema still holds them to every rule.

    Args:
        kind: one of :data:`KINDS`.
        data: the parsed document.

    Returns:
        The pruned copy.
    """
    return _known(validator(kind).schema, data)


def _known(schema: Any, value: Any) -> Any:
    if not isinstance(schema, dict):
        return value
    for part in schema.get("allOf", ()):
        value = _known(part, value)
    for choice in ("oneOf", "anyOf"):
        # The form that keeps the most of the value and fits what it keeps: {file, url, added} is the
        # {file, url} form less ``added``, never the {file} form less ``url`` and ``added``.
        fitting = [(_members(value) - _members(p), p) for p in (_known(f, value) for f in schema.get(choice, ()))]
        value = min((pair for pair in fitting if _fits(schema[choice], pair[1])), default=(0, value), key=_dropped)[1]
    if isinstance(value, dict) and ("properties" in schema or isinstance(schema.get("additionalProperties"), dict)):
        properties, other = schema.get("properties", {}), schema.get("additionalProperties", True)
        value = {
            key: _known(properties.get(key, other), item)
            for key, item in value.items()
            if key in properties or other is not False
        }
    elif isinstance(value, list):
        prefix, items = schema.get("prefixItems", []), schema.get("items")
        value = [_known(prefix[i] if i < len(prefix) else items, item) for i, item in enumerate(value)]
    return value


def _fits(forms: list[Any], value: Any) -> bool:
    """Whether a value fits one of the forms (a pruned value's test for its form)."""
    return any(_Strict(form).is_valid(value) for form in forms)


def _members(value: Any) -> int:
    """How many members a value has, at every depth."""
    if isinstance(value, dict):
        return len(value) + sum(_members(item) for item in value.values())
    if isinstance(value, list):
        return sum(_members(item) for item in value)
    return 0


def _dropped(pair: tuple[int, Any]) -> int:
    return pair[0]


def check_group(record: Mapping[str, Any], written: bytes | None = None) -> None:
    """Check one group record (what ``groups/<hh>.json`` holds a list of).

    Args:
        record: the record.
        written: the canonical JSON of its entries as written, checked instead of the record's entries one by one.

    Raises:
        LayoutError: the first violation.
    """
    _check("group", record, f"group {record.get('id')}", written)
