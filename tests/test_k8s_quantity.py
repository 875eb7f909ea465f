"""Kubernetes quantities, by the rules of k8s.io/apimachinery/pkg/api/resource."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optkit.errors import InputError
from optkit.k8s.quantity import format_amount, parse_quantity, resource_amount


@pytest.mark.parametrize(
    "text, value",
    [
        ("500m", Fraction(1, 2)),
        ("1Gi", 2**30),
        ("2e3", 2000),
        ("128974848", 128974848),
        ("1.5", Fraction(3, 2)),
        ("100Ki", 102400),
        ("1E", 10**18),
        ("1Ei", 2**60),
        ("1e3", 1000),
        ("1E3", 1000),
        ("1e+3", 1000),
        ("1e-3", Fraction(1, 1000)),
        ("0.1", Fraction(1, 10)),
        (".5", Fraction(1, 2)),
        ("5.", 5),
        ("+1", 1),
        ("0", 0),
        ("000", 0),
        ("1k", 1000),
        ("1M", 10**6),
        ("1G", 10**9),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1Mi", 2**20),
        ("1Ti", 2**40),
        ("1Pi", 2**50),
        ("1u", Fraction(1, 10**6)),
        ("1n", Fraction(1, 10**9)),
        ("1.5Gi", 3 * 2**29),
        ("-1", -1),
        (" 2Gi ", 2**31),
        (3, 3),
        (0.5, Fraction(1, 2)),
    ],
)
def test_valid_quantities(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text, cpu, memory",
    [
        ("500m", 500, 1),
        ("1", 1000, 1),
        ("1.5", 1500, 2),
        ("0.30000000000000004", 301, 1),  # rounded up
        ("1u", 1, 1),
        ("2e3", 2_000_000, 2000),
        ("0.9Gi", 966367641600, 966367642),
        ("100Ki", 102400000, 102400),
    ],
)
def test_cpu_in_millicores_and_memory_in_bytes_rounded_up_like_the_scheduler(text, cpu, memory):
    assert resource_amount("cpu", text) == cpu
    assert resource_amount("memory", text) == memory


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "1K",
        "1ki",
        "1KB",
        "Gi",
        "1 Gi",
        "1e",
        "1E+",
        "abc",
        "1.2.3",
        ".",
        "+",
        "1Mi3",
        "1e1.5",
        "--1",
        "1m3",
        "0x10",
        "1,5",
        "1Gib",
        "∞",
        None,
        [1],
        True,
    ],
)
def test_bad_quantities_are_input_errors_naming_the_field(text):
    with pytest.raises(InputError, match="field 'pods.0.cpu'"):
        parse_quantity(text, "pods.0.cpu")


def test_negative_requests_rejected():
    with pytest.raises(InputError, match="negative"):
        resource_amount("cpu", "-100m", "requests.cpu")


def test_non_finite_numbers_rejected():
    with pytest.raises(InputError):
        parse_quantity(float("nan"))


@given(st.integers(0, 10**12), st.sampled_from(["", "k", "M", "G", "Ki", "Mi", "Gi", "m"]))
def test_integer_with_suffix(n, suffix):
    factor = {
        "": 1,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "m": Fraction(1, 1000),
    }[suffix]
    assert parse_quantity(f"{n}{suffix}") == n * factor


@given(st.integers(0, 10**9), st.integers(0, 999))
def test_decimal_cpu_matches_millicores(whole, milli):
    assert resource_amount("cpu", f"{whole}.{milli:03d}") == whole * 1000 + milli
    assert resource_amount("cpu", f"{whole * 1000 + milli}m") == whole * 1000 + milli


def test_format_amount():
    assert format_amount("cpu", 1500) == "1500m"
    assert format_amount("cpu", 2000) == "2"
    assert format_amount("memory", 2 * 2**30) == "2Gi"
    assert format_amount("memory", 1000) == "1000"
