"""Additions to the moto server running in this process, for what the sandbox needs and moto leaves out.

Only for a moto server in the same process (``ThreadedMotoServer``): these write into moto's backends.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from eksops_dev.template import ACCOUNT, PARTITION


def add_aws_managed_policies(names: Iterable[str], account: str = ACCOUNT) -> None:
    """Make the named AWS managed policies (arn:aws:iam::aws:policy/NAME) exist, from moto's own copy of them."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy, iam_backends

    data = json.loads(aws_managed_policies_data)
    backend = iam_backends[account][PARTITION]
    for name in names:
        policy = AWSManagedPolicy.from_data(name, account, backend.region_name, data[name])
        backend.managed_policies.setdefault(policy.arn, policy)
