"""Kubernetes resource quantities, parsed by the rules of k8s.io/apimachinery/pkg/api/resource.

Grammar (from the apimachinery documentation of `Quantity`)::

    <quantity>        ::= <signedNumber><suffix>
    <signedNumber>    ::= <number> | <sign><number>
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <sign>            ::= "+" | "-"
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedInteger> | "E" <signedInteger>

`"1E"` is 10^18 (the decimal SI suffix), `"1e3"` is 1000, `"1K"` and `"1ki"` are errors. Values are
exact (`fractions.Fraction`), and are turned into integers the way the scheduler does: CPU in
millicores with `MilliValue()` and everything else with `Value()`, both rounding up.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from optkit.errors import InputError

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# sign, integer digits, optional fraction, suffix letters, optional signed exponent digits
_SHAPE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*)([+-]?[0-9]*)")


def parse_quantity(value: str | float, field: str = "quantity") -> Fraction:
    """The exact value of a Kubernetes quantity; `InputError` naming `field` if it is malformed."""
    if isinstance(value, bool):
        raise InputError(
            f"field '{field}': expected a quantity such as '500m' or '1Gi', got {value!r}"
        )
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"field '{field}': quantity {value!r} is not finite")
        return Fraction(
            str(value)
        )  # JSON numbers: the decimal the user wrote, not the binary float
    if not isinstance(value, str):
        raise InputError(f"field '{field}': expected a quantity string, got {type(value).__name__}")
    text = value.strip()  # the API server's JSON decoder trims surrounding spaces
    m = _SHAPE.fullmatch(text)
    if not text or m is None:
        raise InputError(
            f"field '{field}': {value!r} is not a Kubernetes quantity "
            f"(examples: 500m, 1.5, 2Gi, 128974848, 2e3)"
        )
    sign, whole, frac, letters, tail = m.groups()
    if not whole and not frac:
        raise InputError(f"field '{field}': {value!r} has no digits")
    suffix = letters + tail
    number = Fraction(int(whole or "0")) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
    if sign == "-":
        number = -number
    if suffix in _BINARY:
        return number * 2 ** _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * Fraction(10) ** _DECIMAL[suffix]
    if suffix[:1] in ("e", "E") and re.fullmatch(r"[+-]?[0-9]+", suffix[1:]):
        exponent = int(suffix[1:])
        if abs(exponent) > 100:  # apimachinery rejects what cannot fit its int64 mantissa/scale
            raise InputError(f"field '{field}': exponent of {value!r} is out of range")
        return number * Fraction(10) ** exponent
    raise InputError(
        f"field '{field}': {value!r} has an unknown suffix {suffix!r} "
        f"(binary Ki Mi Gi Ti Pi Ei, decimal n u m k M G T P E, or e<exponent>)"
    )


def ceil_fraction(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def resource_amount(
    resource: str, value: str | float, field: str | None = None, allow_negative: bool = False
) -> int:
    """The integer the scheduler uses: millicores for "cpu", `Value()` (rounded up) for the rest."""
    field = field or resource
    q = parse_quantity(value, field)
    if q < 0 and not allow_negative:
        raise InputError(f"field '{field}': quantity {value!r} is negative")
    return ceil_fraction(q * 1000) if resource == "cpu" else ceil_fraction(q)


def format_amount(resource: str, amount: int) -> str:
    """A readable quantity for tables: 1500m, 2Gi, 3."""
    if resource == "cpu":
        return f"{amount // 1000}" if amount % 1000 == 0 else f"{amount}m"
    if resource in ("memory", "ephemeral-storage") or resource.startswith("hugepages-"):
        for suffix, power in (("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
            if amount and amount % (1 << power) == 0:
                return f"{amount >> power}{suffix}"
    return str(amount)
