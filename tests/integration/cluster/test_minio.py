"""MinIO as the artifact and table store: the bucket is there, objects round-trip."""

from __future__ import annotations

import io
import uuid

import pytest
from runlake_services.cluster import MinioService, S3Settings

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]  # first run installs


def test_bucket_exists_and_objects_round_trip(minio: MinioService) -> None:
    client = minio.client()
    assert client.bucket_exists(minio.bucket)

    name = f"smoke/{uuid.uuid4().hex}/model.bin"
    payload = bytes(range(256)) * 4096  # 1 MiB
    client.put_object(minio.bucket, name, io.BytesIO(payload), len(payload))
    response = client.get_object(minio.bucket, name)
    try:
        assert response.read() == payload
    finally:
        response.close()
        response.release_conn()
    listed = [o.object_name for o in client.list_objects(minio.bucket, prefix=name)]
    assert listed == [name]


def test_wrong_secret_is_refused(minio: MinioService) -> None:
    from minio.error import S3Error

    right = minio.s3_settings
    wrong = S3Settings(right.endpoint, right.access_key, "not-the-secret", bucket=right.bucket)
    with pytest.raises(S3Error) as e:
        wrong.client().list_buckets()
    assert e.value.code == "SignatureDoesNotMatch"
