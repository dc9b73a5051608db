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


def test_a_downgrade_is_refused_with_the_way_out() -> None:
    from skyline.versioning import check_upgrade

    with pytest.raises(VersionRejected) as info:
        check_upgrade("1.0.0", "0.9.0", force=False)
    assert str(info.value) == (
        "version 0.9.0 is not greater than the active version 1.0.0; "
        "pick a higher version or set force=true to roll back deliberately"
    )
    check_upgrade("1.0.0", "0.9.0", force=True)


@pytest.mark.parametrize(
    ("dep", "expected"),
    [("@acme/design", ("@acme/design", "*")), ("react@", ("react", "*")), ("a@1", ("a", "1"))],
)
def test_split_dependency_edge_cases(dep: str, expected: tuple[str, str]) -> None:
    # a scope's leading @ is not a version separator; a trailing @ means any version
    assert split_dependency(dep) == expected


def test_deprecated_units_do_not_satisfy_dependencies() -> None:
    shop = SHOP.model_copy(deep=True)
    shop.buildings["header"].units["auth@3.1.0"].status = "deprecated"
    assert "auth" not in available_versions(shop)
    with pytest.raises(VersionRejected, match=r"available auth: none"):
        check_unit_rules(shop, ["auth@^3"], "*")


def test_ranges_are_read_strictly_like_npm() -> None:
    # loose parsing would read '1.2.3foo' as 1.2.3-foo; npm refuses it
    with pytest.raises(VersionRejected) as info:
        check_unit_rules(SHOP, ["react@18.2.0foo"], "*")
    assert str(info.value).startswith("dependency 'react' range '18.2.0foo' is not an npm version range")
    with pytest.raises(VersionRejected, match=r"^compatibility '2.3.0foo' is not an npm version range"):
        check_unit_rules(SHOP, [], "2.3.0foo")


def test_several_available_versions_are_listed() -> None:
    with pytest.raises(VersionRejected, match=r"available @acme/design: 1.4.2, 2.0.1\)$"):
        check_unit_rules(SHOP, ["@acme/design@^3"], "*")


def test_an_apartment_without_shared_libraries_offers_its_units() -> None:
    bare = SHOP.model_copy(update={"config": type(SHOP.config)()})
    assert available_versions(bare) == {"auth": ["3.1.0"]}


def test_a_version_that_is_not_strict_semver_satisfies_no_range() -> None:
    # like npm: '=2.3.0' or '02.3.0' is refused with the reason, not a crash of the version parser
    loose_shell = SHOP.model_copy(update={"version": "=2.3.0"})
    with pytest.raises(
        VersionRejected, match=r"^the unit supports shells '>=2' but apartment 'shop' is version"
    ):
        check_unit_rules(loose_shell, [], ">=2")
    shop = SHOP.model_copy(deep=True)
    shop.config = type(SHOP.config)(shared={"react": ["=18.2.0", "17.0.2"]})
    with pytest.raises(VersionRejected, match=r"available react: 17.0.2, =18.2.0\)$"):
        check_unit_rules(shop, ["react@^18"], "*")
    shop.config = type(SHOP.config)(shared={"react": ["=18.2.0", "18.3.1"]})
    check_unit_rules(shop, ["react@^18"], "*")
