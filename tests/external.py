"""An S3 server the tests do not start: MinIO from infra/compose.yaml, or AWS.

Environment variables (see infra/README.md):

- ``HANGAR_TEST_S3_ENDPOINT``: the endpoint URL (omit for AWS);
- ``HANGAR_TEST_S3_KEY`` / ``HANGAR_TEST_S3_SECRET``: credentials;
- ``HANGAR_TEST_S3_REGION``: region (default ``us-east-1``);
- ``HANGAR_TEST_S3_BUCKET``: use this existing bucket instead of creating one per test
  (each test then works under its own random prefix).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ExternalS3:
    endpoint: str | None
    key: str | None
    secret: str | None
    region: str
    bucket: str | None

    @classmethod
    def from_env(cls) -> ExternalS3:
        env = os.environ
        return cls(
            endpoint=env.get("HANGAR_TEST_S3_ENDPOINT") or None,
            key=env.get("HANGAR_TEST_S3_KEY") or None,
            secret=env.get("HANGAR_TEST_S3_SECRET") or None,
            region=env.get("HANGAR_TEST_S3_REGION", "us-east-1"),
            bucket=env.get("HANGAR_TEST_S3_BUCKET") or None,
        )

    def storage_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"client_kwargs": {"region_name": self.region}}
        if self.endpoint:
            opts["endpoint_url"] = self.endpoint
        if self.key:
            opts["key"], opts["secret"] = self.key, self.secret
        return opts

    def boto3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=self.region,
        )

    def create_bucket(self) -> str:
        if self.bucket:
            return self.bucket
        name = f"hangar-test-{uuid.uuid4().hex[:16]}"
        self.boto3_client().create_bucket(Bucket=name)
        return name
