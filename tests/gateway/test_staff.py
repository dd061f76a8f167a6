"""Region scopes (staff.py): a GB/T 2260 prefix, and which people it covers."""

from __future__ import annotations

import pytest

from canbao_gateway.staff import InvalidScope, covers, normalise_scope


@pytest.mark.parametrize(
    ("written", "scope"),
    [
        ("52", "52"),
        ("520000", "52"),
        ("5201", "5201"),
        ("520100", "5201"),
        ("520102", "520102"),
        ("520102003", "520102003"),
        ("520102003001", "520102003001"),
    ],
)
def test_scope_is_the_prefix_a_division_code_stands_for(written: str, scope: str) -> None:
    assert normalise_scope(written) == scope


@pytest.mark.parametrize("written", ["", "5", "52010", "52a102", "５２", "5201020030011"])
def test_scope_must_be_a_division_code(written: str) -> None:
    with pytest.raises(InvalidScope):
        normalise_scope(written)


def test_province_staff_cover_every_county_of_the_province() -> None:
    assert covers("52", "520102") and covers("52", "522701")
    assert not covers("52", "530102")


def test_city_staff_cover_their_city_only() -> None:
    assert covers("5201", "520102") and covers("5201", "520181")
    assert not covers("5201", "520302")


def test_county_clerk_covers_her_county_only() -> None:
    assert covers("520102", "520102")
    assert not covers("520102", "520103")


def test_township_staff_are_not_given_a_whole_county() -> None:
    # Knowing only the county of a person does not place them in the township.
    assert not covers("520102003", "520102")
    assert covers("520102003", "520102003001")
