"""Images for the sandbox's ECR (moto): a manifest whose digest is its own.

moto derives an image's digest from its layers' digests (not from the manifest's bytes), so each image pushed to the
sandbox gets a layer of its own: ``image_manifest(n)`` for distinct ``n`` gives distinct digests.
"""

from __future__ import annotations

import json


def image_manifest(layer: int) -> str:
    """A Docker v2 image manifest with a config and one layer whose digests derive from ``layer``."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7,
                "digest": f"sha256:{layer:064x}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 1024,
                    "digest": f"sha256:{layer + 10_000:064x}",
                }
            ],
        }
    )
