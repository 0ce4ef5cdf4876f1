"""Update policies: which rules apply, how severe, the largest allowed increases; `load_policy`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import attrs

from imagine_billing._checks import (
    NumberProblem,
    close_names,
    exact_number,
    read_bounded,
    shortened,
)
from imagine_billing.errors import PolicyError

if TYPE_CHECKING:
    from fractions import Fraction


Severity = Literal["error", "warning"]
RULES: Mapping[str, Severity] = MappingProxyType({
    "same-api": "error",
    "version-increases": "error",
    "semver-bump": "error",
    "effective-from-forward": "error",
    "deprecate-before-remove": "error",
    "priced-stays-priced": "error",
    "max-increase": "error",
    "default-style-exists": "error",
    "default-style-changed": "warning",
    "version-gap": "warning",
    "published-unchanged": "error",
    "no-back-dating": "error",
    "withdrawn-version": "warning",
})
"""Every rule id and its default severity.

- ``same-api``: both tables price the same API.
- ``version-increases``: the new version is a semantic version greater than the old one.
- ``semver-bump``: the version bump is at least what the changes require: *major* for a
  removed style or operation, a cost rise (including priced -> unpriced) or a style moved to
  another operation; *minor* for an addition, a cost cut (including unpriced -> priced) or a
  status change; *patch* for metadata only (names, methods, paths, source, note). A changed
  default style reprices the calls to its operation that name no style, so it counts by
  their cost (see `MetadataChange.bump`). Identical content under a new version is fine.
- ``effective-from-forward``: the new ``effective_from`` is later than the old one.
- ``deprecate-before-remove``: a removed style had status ``"deprecated"`` in the old table.
- ``priced-stays-priced``: a style or operation with a price never loses it, and neither do
  the calls to an operation that name no style when its default style changes (an unknown
  price is not a free one, and estimates of it would start failing).
- ``max-increase``: no cost rises by more than the policy's ``max_increase`` ratio, the cost
  of calls that name no style included (only checked when the policy sets one). A policy key
  that names no style or operation of either table is reported as a warning whatever this
  rule's severity: it is a stale (or mistyped) line of the policy, not a price rise.
- ``default-style-exists``: see `check_update`.
- ``default-style-changed``: calls that name no style are now billed at another style (or
  at the flat cost instead of a style, or the reverse).
- ``version-gap``: the new version is not the next patch, minor or major of the old one
  (1.0.0 then 1.1.5 or 3.0.0), as when a scheduled version was withdrawn.
- ``published-unchanged``, ``no-back-dating``, ``withdrawn-version``: `check_book` with a
  ``previous`` book only. ``no-back-dating``: a version that was not in ``previous`` takes
  effect at or before ``now``, so it re-prices calls already made.
"""


RuleSetting = Literal["error", "warning", "off"]
_SETTINGS: tuple[RuleSetting, ...] = ("error", "warning", "off")


def _rules(value: Mapping[str, str] | None) -> Mapping[str, RuleSetting]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise PolicyError(f"rules must be an object of rule id -> \"error\", \"warning\" or "
                          f"\"off\" (got {type(value).__name__})")
    problems: list[str] = []
    result: dict[str, RuleSetting] = {}
    for rule, setting in value.items():
        if rule not in RULES:
            problems.append(f"unknown rule {rule!r}{_suggest(rule, RULES)}")
        elif setting not in _SETTINGS:
            problems.append(f"rule {rule!r} must be \"error\", \"warning\" or \"off\" "
                            f"(got {_json(setting)}){_suggest(setting, _SETTINGS, listing=False)}")
        else:
            result[rule] = _SETTINGS[_SETTINGS.index(setting)]
    if problems:
        raise PolicyError("invalid update policy: " + "; ".join(problems))
    return MappingProxyType(result)


def _ratios(value: Mapping[str, object] | None) -> Mapping[str, Fraction]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise PolicyError("max_increase must be an object of style id (or \"*\" for every "
                          f"style) -> ratio (got {type(value).__name__})")
    problems: list[str] = []
    result: dict[str, Fraction] = {}
    for key, raw in value.items():
        if not isinstance(key, str) or not key:
            problems.append(f"max_increase keys must be style ids or \"*\" (got {key!r})")
            continue
        ratio = _ratio(raw)
        if ratio == "not-a-number":
            problems.append(f"max_increase[{key!r}] must be a ratio >= 1 given as a number or "
                            f"a string such as \"1.5\" or \"3/2\" (got {_json(raw)})")
        elif ratio == "below-one":
            problems.append(f"max_increase[{key!r}] must be >= 1 (1.5 allows a rise of 50%, 1 "
                            f"allows none; got {_json(raw)})")
        elif ratio == "too-large":
            problems.append(f"max_increase[{key!r}] must be at most {_MAX_RATIO} (a larger "
                            f"limit allows any rise: leave the key out; got {_json(raw)})")
        elif ratio == "too-precise":
            problems.append(f"max_increase[{key!r}] must have at most {_MAX_DIGITS} "
                            f"significant digits, such as \"1.5\" (got {_json(raw)})")
        else:
            result[key] = ratio
    if problems:
        raise PolicyError("invalid update policy: " + "; ".join(problems))
    return MappingProxyType(result)


_MAX_RATIO = 10**6
"""The largest ``max_increase`` a policy may set: a million-fold rise is no limit at all."""
_MAX_DIGITS = 30
"""The most significant digits a ``max_increase`` may have (``"1.5"`` has two)."""

_RatioProblem = Literal["not-a-number", "below-one", "too-large", "too-precise"]


def _ratio(raw: object) -> Fraction | _RatioProblem:
    """The exact ratio ``raw`` stands for, or what is wrong with it (`exact_number` bounds
    its size before any Fraction is built: ``1e999999999`` would take for ever to make)."""
    value = exact_number(raw, digits=_MAX_DIGITS, exponents=(0, len(str(_MAX_RATIO)) - 1))
    if isinstance(value, str):
        return _RATIO_PROBLEMS[value]
    if value < 1:
        return "below-one"
    return "too-large" if value > _MAX_RATIO else value


_RATIO_PROBLEMS: dict[NumberProblem, _RatioProblem] = {
    "not-a-number": "not-a-number", "negative": "below-one", "too-small": "below-one",
    "too-large": "too-large", "too-precise": "too-precise"}


@attrs.frozen
class UpdatePolicy:
    """Which update rules apply, how severe each is, and the largest allowed increases.

    ``UpdatePolicy()`` applies every rule at its default severity (`RULES`) and sets no
    increase limit. ``UpdatePolicy(rules={"deprecate-before-remove": "warning"},
    max_increase={"*": "1.5", "flux-dev": 2})`` lets any style rise by half at most, flux-dev
    double, and only warns about removals without deprecation.

    Raises:
        PolicyError: an unknown rule id or setting, or a ratio that is not a number >= 1.
    """

    rules: Mapping[str, RuleSetting] = attrs.field(factory=dict, converter=_rules, hash=False)
    """Severity by rule id (``"error"``, ``"warning"`` or ``"off"``), over the defaults."""
    max_increase: Mapping[str, Fraction] = attrs.field(
        factory=dict, converter=_ratios, hash=False
    )
    """The largest allowed ``new / old`` cost ratio by style (or operation) id; ``"*"``
    applies to every id not named. ``{"*": Fraction(3, 2)}``: 10 -> 15 passes, 10 -> 16
    does not."""

    def __reduce__(self) -> tuple[type[UpdatePolicy], tuple[dict[str, str], dict[str, Fraction]]]:
        return UpdatePolicy, (dict(self.rules), dict(self.max_increase))  # for pickle, deepcopy

    def severity(self, rule: str) -> Severity | None:
        """The severity of ``rule`` under this policy; ``None`` when it is off."""
        setting = self.rules.get(rule, RULES[rule])
        return None if setting == "off" else setting

    def limit(self, key: str) -> Fraction | None:
        """The ``max_increase`` that applies to a style or operation id, if any."""
        return self.max_increase.get(key, self.max_increase.get("*"))

    @classmethod
    def from_dict(cls, data: object, *, source: str | None = None) -> UpdatePolicy:
        """A policy from its JSON document.

        ``{"rules": {"semver-bump": "error", "max-increase": "warning"},
        "max_increase": {"*": 1.5, "flux-dev": "2"}}``; both keys are optional.

        Raises:
            PolicyError: an unknown key, rule id or setting, or a bad ratio; the message
                names every one, with close matches.
        """
        where = f"{source}: " if source else ""
        if not isinstance(data, Mapping):
            raise PolicyError(f"{where}an update policy must be a JSON object "
                              f"(got {type(data).__name__})")
        unknown = [key for key in data if key not in ("rules", "max_increase")]
        if unknown:
            raise PolicyError(where + "invalid update policy: " + "; ".join(
                f"unknown key {key!r}{_suggest(key, ('rules', 'max_increase'))}"
                for key in unknown))
        try:
            return cls(rules=data.get("rules"), max_increase=data.get("max_increase"))
        except PolicyError as error:
            if not where:
                raise
            raise PolicyError(where + str(error)) from None


def load_policy(path: str | os.PathLike[str]) -> UpdatePolicy:
    """Read an `UpdatePolicy` from a JSON file (see `UpdatePolicy.from_dict`).

    Numbers are read as decimals, never floats: ``1.1`` is exactly 11/10.

    Raises:
        PolicyError: the file cannot be read, is not JSON, or is not a valid policy.
    """
    from decimal import Decimal

    name = os.fspath(path)

    def refuse(text: str) -> object:
        raise ValueError(f"{text} is not a number JSON allows")

    try:
        text = read_bounded(name).decode("utf-8-sig")
        data = json.loads(text, parse_float=Decimal, parse_constant=refuse)
    except OSError as error:
        raise PolicyError(f"cannot read policy file {name}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise PolicyError(f"policy file {name} is not UTF-8 text: {error.reason}") from None
    except ValueError as error:  # json.JSONDecodeError is one
        raise PolicyError(f"policy file {name} is not JSON: {error}") from None
    except RecursionError:
        raise PolicyError(f"policy file {name} is not JSON this library reads: nested too "
                          "deeply") from None
    return UpdatePolicy.from_dict(data, source=name)


def _json(value: object, width: int = 60) -> str:
    """A value as the JSON text a policy file would hold (Decimals as their digits), cut to
    about ``width`` characters."""
    from decimal import Decimal

    try:
        text = str(value) if isinstance(value, Decimal) else json.dumps(
            value, default=str, allow_nan=True)
    except (TypeError, ValueError, RecursionError):  # nested too deeply to show
        text = f"a {type(value).__name__}"
    return shortened(text, width)


def _suggest(word: object, known: Iterable[str], *, listing: bool = True) -> str:
    """``"; did you mean 'x'?"`` for a close match, else the list of what is known."""
    options = list(known)
    if isinstance(word, str):
        matches = close_names(word, options)
        if matches:
            return f"; did you mean {matches[0]!r}?"
    if not listing or len(options) > 15:
        return ""
    return f" (expected one of: {', '.join(options)})"
