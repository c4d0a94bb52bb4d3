"""Every combination a matrix lists that cannot launch, and the fewest exclude rules that leave them out.

Expansion does not stop at the first combination a host cannot launch: it
collects them all (:class:`Refusals`), one cause per distinct reason, and
suggests exclude rules to paste into the matrix. Each rule names the axes its
cause depends on, as the check that refused it knows them (a CPU model a QEMU
lacks depends on the CPU and the host stack, not on the firmware or the mode),
and never leaves out a combination that can launch: a rule that would is given
the next axes it needs. A greedy set cover then keeps the fewest such rules,
and rules that differ in one axis become one rule with a list there.

The work is per combination of axes, never per vCPU count: a matrix of
millions of entries has far fewer combinations, and the rules are computed
from those alone.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

import yaml

from sevref.digest import Mode
from sevref.errors import ManifestError, SevrefError, printable
from sevref.manifest.model import CpuSpec, Matrix

__all__ = [
    "AXES",
    "MAX_CAUSES_SHOWN",
    "MAX_RULES_SHOWN",
    "Combination",
    "Refusals",
    "Rule",
    "UnlaunchableError",
    "describe",
]

AXES = ("mode", "firmware", "host_stack", "boot", "cpu")
"""The axes a rule can name (besides ``vcpus``), in the order a rule writes them: the manifest's pattern keys."""

_MODE, _FIRMWARE, _HOST, _BOOT, _CPU = range(len(AXES))
_DROP_ORDER = (_CPU, _BOOT, _HOST, _FIRMWARE, _MODE)
"""The axes tried first for removal when a cause does not say which axes it depends on."""
_MERGE_ORDER = (_CPU, _HOST, _FIRMWARE, _BOOT, _MODE)
"""The axes along which rules that differ in one value are merged into one, first to last."""
_VMSA_MODES = frozenset({Mode.SEV_ES, Mode.SEV_SNP})

MAX_RULES_SHOWN = 20
"""At most this many suggested rules are printed; the rest are counted ("and N more")."""
MAX_CAUSES_SHOWN = 20
"""At most this many causes are printed; the rest are counted."""

Combination = tuple[Mode, str, str, str | None, CpuSpec | None]
"""(mode, firmware id, host stack id, boot id or None, CPU or None): what include and exclude rules match."""


class UnlaunchableError(ManifestError):
    """Combinations that matrices list and hosts cannot launch.

    Its message is the one error that spans several lines: a first line that
    names the file, line and column of the first matrix, then one line per
    cause, then the exclude rules to paste, as YAML.
    """

    def diagnostic(self) -> str:
        """Return the message, one line per cause and per rule, each made safe to print.

        Returns:
            The lines, joined by line breaks.
        """
        return "\n".join(printable(line) for line in str(self).split("\n"))


@dataclass(frozen=True)
class Rule:
    """One suggested exclude rule."""

    keys: tuple[tuple[int, frozenset[object]], ...]
    """(axis index in :data:`AXES`, the values it matches), by axis index."""
    vcpus: tuple[int, ...] = ()
    """The vCPU counts it leaves out (empty: every count)."""

    def yaml(self) -> str:
        """The rule in manifest syntax, as one YAML flow mapping: ``{cpu: EPYC-Turin, host_stack: debian12}``.

        Returns:
            The text.
        """
        parts = [f"{AXES[axis]}: {_values_text(axis, values)}" for axis, values in self.keys]
        if self.vcpus:
            parts.append(f"vcpus: [{', '.join(_ranges(self.vcpus))}]")
        return "{" + ", ".join(parts) + "}"


def _scalar(text: str) -> str:
    """A YAML scalar that reads back as ``text`` (quoted when plain text would not)."""
    try:
        plain = yaml.safe_load(text) == text and not any(c in text for c in ",[]{}:#&*!|>'\"%@`")
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text)


def _value_text(axis: int, value: object) -> str:
    if axis == _BOOT and value is None:
        return "null"
    if axis == _CPU and isinstance(value, CpuSpec):
        return value.name if value.name else f'"{value.signature:#x}"'
    return _scalar(str(value))


def _sort_key(axis: int, value: object) -> tuple[object, ...]:
    if axis == _MODE and isinstance(value, Mode):
        return (list(Mode).index(value),)
    if axis == _CPU and isinstance(value, CpuSpec):
        return (value.signature, value.name or "")
    return (value is not None, str(value))


def _values_text(axis: int, values: Collection[object]) -> str:
    ordered = sorted(values, key=lambda v: _sort_key(axis, v))
    texts = [_value_text(axis, v) for v in ordered]
    if len(texts) == 1 and not (axis == _BOOT and ordered[0] is None):
        return texts[0]  # a lone null boot must stay a list: `boot: null` would mean no key
    return "[" + ", ".join(texts) + "]"


def _ranges(counts: Iterable[int]) -> list[str]:
    """Write vCPU counts as a manifest does: ``[1, 2, 3, 8]`` -> ``['"1-3"', '8']``."""
    runs: list[list[int]] = []
    for count in sorted(counts):
        if runs and count == runs[-1][1] + 1:
            runs[-1][1] = count
        else:
            runs.append([count, count])
    return [f"{low}" if low == high else f'"{low}-{high}"' for low, high in runs]


def describe(combination: Combination) -> str:
    """A combination for people: ``mode sev-es, firmware fw, host stack q91, boot direct, cpu EPYC``.

    Args:
        combination: the combination.

    Returns:
        The text.
    """
    mode, firmware, host, boot, cpu = combination
    text = f"mode {mode}, firmware {firmware}, host stack {host}"
    if boot is not None:
        text += f", boot {boot}"
    if cpu is not None:
        text += f", cpu {cpu.label()}"
    return text


@dataclass
class _Cause:
    why: str
    example: str
    count: int = 0


@dataclass
class _VcpuRefusal:
    why: str
    counts: set[int] = field(default_factory=set)


class _Launchable:
    """The combinations that can launch, projected on sets of axes, each projection computed once."""

    def __init__(self, combinations: Collection[Combination], cpus: Sequence[CpuSpec]) -> None:
        self._combinations = combinations
        self._seen: dict[tuple[int, ...], set[tuple[object, ...]]] = {}
        self._named: dict[int, list[CpuSpec]] = {}
        for cpu in cpus:
            if cpu.name is not None:
                self._named.setdefault(cpu.signature, []).append(cpu)

    def matched(self, axes: tuple[int, ...], combination: Combination) -> bool:
        """Tell whether a rule naming ``combination``'s values on ``axes`` would leave out a launchable one."""
        seen = self._seen.get(axes)
        if seen is None:
            seen = self._seen[axes] = {tuple(c[i] for i in axes) for c in self._combinations}
        values = tuple(combination[i] for i in axes)
        if values in seen:
            return True
        if _CPU not in axes:
            return False
        cpu = combination[4]
        if cpu is None or cpu.name is not None:
            return False
        # A rule naming a bare signature also matches every named model with that signature.
        at = axes.index(_CPU)
        return any((*values[:at], named, *values[at + 1 :]) in seen for named in self._named.get(cpu.signature, ()))


class Refusals:
    """The combinations of one matrix that cannot launch, collected as expansion meets them."""

    def __init__(self, matrix: Matrix) -> None:
        """Start with none.

        Args:
            matrix: the matrix whose combinations these are.
        """
        self.matrix = matrix
        self._failing: dict[Combination, str] = {}
        self._causes: dict[str, _Cause] = {}
        self._axes: dict[str, frozenset[str] | None] = {}
        self._vcpus: dict[str, _VcpuRefusal] = {}
        self._vcpu_combinations: set[Combination] = set()

    def __bool__(self) -> bool:
        """Tell whether anything was refused."""
        return bool(self._failing or self._vcpus)

    def refuse(
        self, combination: Combination, why: str | SevrefError, axes: Callable[[], frozenset[str] | None]
    ) -> None:
        """Record a combination that cannot launch.

        Args:
            combination: the combination.
            why: the reason (or the error that says it), one line; combinations with the same reason share a cause.
            axes: the names of the axes the reason depends on (:data:`AXES`), or None when
                unknown; called once per reason.
        """
        if isinstance(why, SevrefError):
            why = why.diagnostic()
        if combination in self._failing:
            return  # another command line of the same boot
        self._failing[combination] = why
        cause = self._causes.get(why)
        if cause is None:
            cause = self._causes[why] = _Cause(why, describe(combination))
            self._axes[why] = axes()
        cause.count += 1

    def refuse_vcpus(self, combination: Combination, why: str, counts: Iterable[int]) -> None:
        """Record vCPU counts a host stack cannot launch (they depend on the host stack alone).

        Args:
            combination: the combination.
            why: the reason (the machine type's limit).
            counts: the refused counts.
        """
        counts = tuple(counts)
        host = combination[2]
        refusal = self._vcpus.setdefault(host, _VcpuRefusal(why))
        refusal.counts.update(counts)
        if combination in self._vcpu_combinations:
            return  # another command line of the same boot
        self._vcpu_combinations.add(combination)
        cause = self._causes.get(why)
        if cause is None:
            example = f"{describe(combination)}, vcpus {', '.join(r.strip(chr(34)) for r in _ranges(counts))}"
            cause = self._causes[why] = _Cause(why, example)
        cause.count += 1

    # ------------------------------------------------------------------ the rules

    def rules(self, live: Iterable[Combination]) -> list[Rule]:
        """The fewest exclude rules found that leave out every refused combination and nothing else.

        Args:
            live: every combination the matrix's include and exclude rules leave (refused or not).

        Returns:
            The rules, in the order they are printed.
        """
        launchable: set[Combination] = set()
        seen: list[set[object]] = [set() for _ in AXES]
        for combination in live:
            for axis, value in enumerate(combination):
                seen[axis].add(value)
            if combination not in self._failing:
                launchable.add(combination)
        check = _Launchable(launchable, self.matrix.cpus)
        candidates: dict[tuple[tuple[int, ...], tuple[object, ...]], None] = {}
        chosen_axes: dict[tuple[str, tuple[int, ...]], tuple[int, ...]] = {}
        for combination, why in self._failing.items():
            available = tuple(i for i in range(len(AXES)) if i != _CPU or combination[_CPU] is not None)
            memo = (why, available)
            axes = chosen_axes.get(memo)
            if axes is None or check.matched(axes, combination):
                axes = self._rule_axes(combination, self._axes[why], available, check)
                chosen_axes.setdefault(memo, axes)
            candidates[(axes, tuple(combination[i] for i in axes))] = None
        picked = _greedy_cover(list(candidates), self._failing)
        merged = _merge(
            [{axis: frozenset({value}) for axis, value in zip(axes, values, strict=True)} for axes, values in picked],
            [frozenset(values) for values in seen],
        )
        rules = [Rule(tuple(sorted(r.items(), key=lambda kv: kv[0]))) for r in merged]
        rules += self._vcpu_rules()
        return sorted(rules, key=Rule.yaml)

    @staticmethod
    def _rule_axes(
        combination: Combination, named: frozenset[str] | None, available: tuple[int, ...], check: _Launchable
    ) -> tuple[int, ...]:
        """The axes of the rule for ``combination``: those its cause names, plus what it needs to spare the rest."""
        if named is None:  # a reason that does not say: as few axes as spare every launchable combination
            axes = list(available)
            for axis in _DROP_ORDER:
                if axis in axes and len(axes) > 1:
                    fewer = tuple(a for a in axes if a != axis)
                    if not check.matched(fewer, combination):
                        axes.remove(axis)
            return tuple(axes)
        axes = [i for i in available if AXES[i] in named]
        added = []
        for axis in available:
            if axes and not check.matched(tuple(axes), combination):
                break
            if axis not in axes:
                axes = sorted([*axes, axis])
                added.append(axis)
        for axis in reversed(added[:-1]):  # the last one was needed; an earlier one may not be
            fewer = tuple(a for a in axes if a != axis)
            if fewer and not check.matched(fewer, combination):
                axes.remove(axis)
        return tuple(axes)

    def _vcpu_rules(self) -> list[Rule]:
        """One rule per set of counts: the host stacks that refuse them (and the modes with vCPUs, if others are listed)."""
        hosts: dict[tuple[int, ...], set[str]] = {}
        for host, refusal in self._vcpus.items():
            hosts.setdefault(tuple(sorted(refusal.counts)), set()).add(host)
        modes = frozenset(m for m in self.matrix.modes if m in _VMSA_MODES)
        # A rule with vcpus leaves out a combination without vCPUs (SEV) whole: name the modes then.
        keys_mode: tuple[tuple[int, frozenset[object]], ...] = (
            ((_MODE, frozenset(modes)),) if set(self.matrix.modes) - _VMSA_MODES else ()
        )
        return [Rule((*keys_mode, (_HOST, frozenset(names))), counts) for counts, names in hosts.items()]

    # ------------------------------------------------------------------ the message

    def report(self, live: Iterable[Combination]) -> str:
        """The error for this matrix: one line for one cause and one rule, else the causes and a YAML block.

        One cause that one rule leaves out reads as every other error, on one
        line, the rule in YAML flow syntax. Otherwise the first line sums up,
        then each cause has a line (an example combination, how many more, why),
        then the rules follow as the ``exclude:`` block to paste into the
        matrix, indented as its keys are.

        Args:
            live: as for :meth:`rules`.

        Returns:
            The text.
        """
        rules = self.rules(live)
        combinations = len(self._failing) + len(self._vcpu_combinations - set(self._failing))
        causes = list(self._causes.values())
        head = f"{self.matrix.origin}: matrix {self.matrix.id}"
        if len(causes) == 1 and len(rules) == 1:
            (cause,) = causes
            which = "this combination does" if cause.count == 1 else f"these {cause.count} combinations do"
            return (
                f"{head}: {cause.example}{_more(cause.count)}: {cause.why}; if {which} not exist, leave "
                f"{'it' if cause.count == 1 else 'them'} out with exclude: [{rules[0].yaml()}]"
            )
        lines = [
            f"{head}: {combinations} combinations cannot launch, for {_count(len(causes), 'cause')}; if they do not "
            f"exist, leave them out with {_count(len(rules), 'exclude rule')} (below)"
        ]
        lines += [f"  {cause.example}{_more(cause.count)}: {cause.why}" for cause in causes[:MAX_CAUSES_SHOWN]]
        if len(causes) > MAX_CAUSES_SHOWN:
            lines.append(f"  and {_count(len(causes) - MAX_CAUSES_SHOWN, 'more cause')}")
        indent = " " * _column(self.matrix.origin)
        if self.matrix.exclude:
            lines.append(f"{indent}# add to the exclude rules of matrix {self.matrix.id}:")
        else:
            lines.append(f"{indent}exclude:")
        lines += [f"{indent}  - {rule.yaml()}" for rule in rules[:MAX_RULES_SHOWN]]
        if len(rules) > MAX_RULES_SHOWN:
            more = _count(len(rules) - MAX_RULES_SHOWN, "more rule")
            lines.append(f"{indent}  # and {more}: validate again once these are in")
        return "\n".join(lines)


def _more(count: int) -> str:
    return f" (and {count - 1} more)" if count > 1 else ""


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _column(origin: str) -> int:
    """The indentation of a matrix's keys, from its ``file:line:column`` (4 when the origin has none)."""
    column = origin.rsplit(":", 1)[-1]
    return int(column) - 1 if column.isdigit() and int(column) > 0 else 4


def _greedy_cover(
    candidates: Sequence[tuple[tuple[int, ...], tuple[object, ...]]], failing: Collection[Combination]
) -> list[tuple[tuple[int, ...], tuple[object, ...]]]:
    """Pick candidate rules, each time the one that leaves out the most combinations still left, until none is."""
    by_axes: dict[tuple[int, ...], dict[tuple[object, ...], set[Combination]]] = {}
    for axes in {axes for axes, _ in candidates}:
        index: dict[tuple[object, ...], set[Combination]] = {}
        for combination in failing:
            index.setdefault(tuple(combination[i] for i in axes), set()).add(combination)
        by_axes[axes] = index
    covers = [by_axes[axes].get(values, set()) for axes, values in candidates]
    left = set(failing)
    heap = [(-len(cover), order) for order, cover in enumerate(covers)]
    heapq.heapify(heap)
    picked = []
    while left and heap:
        size, order = heapq.heappop(heap)
        fresh = len(covers[order] & left)
        if fresh == 0:
            continue
        if fresh < -size and heap and -heap[0][0] > fresh:
            heapq.heappush(heap, (-fresh, order))  # stale: try it again at its true size
            continue
        picked.append(candidates[order])
        left -= covers[order]
    return picked


def _merge(
    rules: list[dict[int, frozenset[object]]], domains: Sequence[frozenset[object]]
) -> list[dict[int, frozenset[object]]]:
    """Make rules that differ in one axis one rule with a list of values there.

    Each rule is first written out in full, an axis it does not name taking
    every value the matrix has there (``domains``), so that two rules that
    agree on every other axis merge into exactly their union, whatever axes
    each named. A merged rule names an axis where its values are not all the
    matrix's, and where every rule merged into it named it (the axes of a
    cause stay in its rule even when the matrix has one value there).
    """
    full = [
        (tuple(rule.get(i, domains[i]) for i in range(len(AXES))), frozenset(rule), frozenset(rule)) for rule in rules
    ]
    changed = True
    while changed:
        changed = False
        for axis in _MERGE_ORDER:
            buckets: dict[
                tuple[frozenset[object], ...],
                list[tuple[tuple[frozenset[object], ...], frozenset[int], frozenset[int]]],
            ] = {}
            for entry in full:
                values = entry[0]
                buckets.setdefault(values[:axis] + values[axis + 1 :], []).append(entry)
            if len(buckets) == len(full):
                continue
            changed = True
            full = []
            for group in buckets.values():
                values = group[0][0]
                union = frozenset().union(*(v[axis] for v, _, _ in group))
                every = frozenset.intersection(*(n for _, n, _ in group))
                some = frozenset().union(*(n for _, _, n in group))
                full.append(((*values[:axis], union, *values[axis + 1 :]), every, some))
    merged = []
    for values, every, some in full:
        rule = {i: v for i, v in enumerate(values) if v != domains[i] or i in every}
        merged.append(rule or {i: values[i] for i in some})  # never a rule that names nothing
    return merged
