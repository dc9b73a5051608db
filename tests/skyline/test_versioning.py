from __future__ import annotations

import pytest

from skyline.manifest import Apartment
from skyline.versioning import VersionRejected, available_versions, check_unit_rules, split_dependency

SHOP = Apartment.model_validate(
    {
        "name": "shop",
        "version": "2.3.0",
        "config": {"shared": {"react": "18.2.0", "@acme/design": ["1.4.2", "2.0.1"]}},
        "buildings": {
            "header": {
                "name": "Header",
                "category": "header",
                "active_unit": "auth@3.1.0",
                "units": {
                    "auth@3.1.0": {
                        "id": "auth@3.1.0",
                        "name": "auth",
                        "version": "3.1.0",
                        "url": "u",
                        "checksum": "c",
                        "size": 1,
                    }
                },
            }
        },
    }
)


@pytest.mark.parametrize(
    ("dep", "expected"),
    [
        ("react@^18.2", ("react", "^18.2")),
        ("@acme/design@~1.4", ("@acme/design", "~1.4")),
        ("vue", ("vue", "*")),
    ],
)
def test_split_dependency(dep: str, expected: tuple[str, str]) -> None:
    assert split_dependency(dep) == expected


def test_available_versions_come_from_shared_libraries_and_units() -> None:
    assert available_versions(SHOP) == {
        "react": ["18.2.0"],
        "@acme/design": ["1.4.2", "2.0.1"],
        "auth": ["3.1.0"],
    }


@pytest.mark.parametrize(
    "deps", [["react@^18.0.0"], ["@acme/design@1.x || >=2 <3"], ["auth@3.0.0 - 3.9.9"], ["react@~18.2"], []]
)
def test_npm_ranges_resolve(deps: list[str]) -> None:
    check_unit_rules(SHOP, deps, ">=2.0.0 <3")


@pytest.mark.parametrize(
    ("deps", "compat", "message"),
    [
        (
            ["react@^19"],
            "*",
            "dependency 'react@^19' has no compatible version in this apartment (available react: 18.2.0)",
        ),
        (["vue@^3"], "*", "available vue: none"),
        (["react@what?"], "*", "is not an npm version range"),
        ([], "^3.0.0", "supports shells '^3.0.0' but apartment 'shop' is version 2.3.0"),
        ([], "1.x.y.z", "compatibility '1.x.y.z' is not an npm version range"),
    ],
)
def test_refusals_name_the_problem(deps: list[str], compat: str, message: str) -> None:
    with pytest.raises(VersionRejected) as info:
        check_unit_rules(SHOP, deps, compat)
    assert message in str(info.value)
