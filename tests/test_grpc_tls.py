"""gRPC over TLS when MLAPI_GRPC_TLS_CERT/KEY are set, and a graceful stop that loses no usage."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import tritonclient.grpc as triton

from tests.conftest import make_subscriber_key
from tests.servers import GrpcServer
from tests.support.grpc_calls import IRIS_ROW
from usage.models import UsageRecord

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def certificate(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_serving_and_graceful_stop_flushes_buffered_usage(certificate, live_demo_models):
    cert, key_file = certificate
    _, key = make_subscriber_key(plan_name="grpc-tls")
    server = GrpcServer(
        env={
            "MLAPI_GRPC_TLS_CERT": str(cert),
            "MLAPI_GRPC_TLS_KEY": str(key_file),
            "MLAPI_USAGE_MODE": "buffered",
            "MLAPI_USAGE_FLUSH_INTERVAL_S": "3600",  # only the exit flush writes
        }
    )
    try:
        server.start(root_certificates=cert.read_bytes())
        client = triton.InferenceServerClient(server.address, ssl=True, root_certificates=str(cert))
        tensor = triton.InferInput("input", [1, 4], "FP64")
        tensor.set_data_from_numpy(np.array([IRIS_ROW], dtype=np.float64))
        result = client.infer("iris", [tensor], headers={"x-api-key": key})
        assert result.as_numpy("predict").tolist() == [b"setosa"]
        client.close()
        with pytest.raises(triton.InferenceServerException):  # plaintext is refused
            triton.InferenceServerClient(server.address).is_server_live(client_timeout=5)
        assert not UsageRecord.objects.exists()
        assert server.stop() == 0, server.log_text()
    finally:
        server.stop()
        server.log.close()
    assert UsageRecord.objects.get().protocol == "grpc"
