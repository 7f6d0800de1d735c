"""Pure parts of the AWS-side compliance rules: the EKS version calendar, image references, floating tags."""

from __future__ import annotations

from datetime import date

import pytest

from eksops.compliance.rules import cluster, images

DIGEST = "sha256:" + "ab" * 32
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
PULLED = f"docker-pullable://{ECR}/cart@{DIGEST}"


def test_the_calendar_is_eks_lifecycle_of_14_plus_12_months() -> None:
    versions = sorted(cluster.CALENDAR)
    assert versions == [(1, minor) for minor in range(versions[0][1], versions[-1][1] + 1)]  # no gaps
    for standard, extended in cluster.CALENDAR.values():
        assert date(standard.year + 1, standard.month, standard.day) == extended  # 12 months of extended support
    ends = [cluster.CALENDAR[v][0] for v in versions]
    assert ends == sorted(ends)


@pytest.mark.parametrize(
    ("version", "status"),
    [((1, 28), "UNSUPPORTED"), ((1, 99), "STANDARD_SUPPORT"), ((1, 31), "")],
)
def test_versions_outside_the_calendar(version: tuple[int, int], status: str) -> None:
    assert cluster._from_calendar(version).status == status


@pytest.mark.parametrize(
    ("image", "image_id", "expected"),
    [
        (f"{ECR}/shop/cart:1.2", "", ("123456789012", "eu-west-1", "shop/cart", "1.2", None)),
        (
            f"{ECR}/cart",
            f"docker-pullable://{ECR}/cart@{DIGEST}",
            ("123456789012", "eu-west-1", "cart", "latest", DIGEST),
        ),
        (f"{ECR}/cart:1.2@{DIGEST}", "", ("123456789012", "eu-west-1", "cart", "1.2", DIGEST)),
        ("nginx:1.27", f"docker.io/library/nginx@{DIGEST}", None),
        ("public.ecr.aws/nginx/nginx:1.27", "", None),
    ],
)
def test_ecr_image_references(image: str, image_id: str, expected: tuple[str, ...] | None) -> None:
    assert images._ecr_image(image, image_id) == expected


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("nginx", "no tag (pulls latest)"),
        ("nginx:latest", "tag latest"),
        ("registry.local:5000/team/app", "no tag (pulls latest)"),  # the port is not a tag
        ("registry.local:5000/team/app:1.0", None),
        (f"nginx@{DIGEST}", None),
        (f"nginx:latest@{DIGEST}", None),  # pinned by digest: the tag is only a label
    ],
)
def test_floating_tags(image: str, why: str | None) -> None:
    assert images._floating(image) == why
