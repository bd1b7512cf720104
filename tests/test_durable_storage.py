"""`spark broker start --storage s3://...` keeps data across a broker restart.

The S3 server is moto's (a real HTTP S3 implementation, in memory), started
here as its own process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spark.broker.embedded import free_port, port_open
from tests.conftest import spark_cmd


@pytest.fixture
def s3_server(tmp_path):
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("moto_server is not installed (pip install -e '.[test]' brings it)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port):
        assert time.monotonic() < deadline and proc.poll() is None, "moto_server did not start"
        time.sleep(0.1)
    env = {
        "AWS_ENDPOINT": f"http://127.0.0.1:{port}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "spark",
        "AWS_SECRET_ACCESS_KEY": "spark",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    import boto3

    boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id="spark",
        aws_secret_access_key="spark",
    ).create_bucket(Bucket="spark")
    yield env
    proc.terminate()
    proc.wait(10)


def test_s3_storage_survives_a_broker_restart(s3_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update(s3_server, SPARK_HOME=str(tmp_path / "home"))
    port = str(free_port())

    def spark(*args: str) -> str:
        proc = subprocess.run(
            spark_cmd(*args), capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    data = Path(__file__).resolve().parent.parent / "spark/data/equity/ibm/20131007_quote.zip"
    try:
        spark("broker", "start", "--port", port, "--storage", "s3://spark/")
        spark("topics", "create")
        replayed = spark("ticks", "replay", str(data), "--format", "lean-quote", "--json")
        produced = json.loads(replayed.strip().splitlines()[-1])["produced"]
        spark("broker", "stop")
        spark("broker", "start", "--port", port, "--storage", "s3://spark/")
        described = json.loads(spark("topics", "describe", "ticks", "--json"))
        assert described["messages"] == produced == 9_997
    finally:
        subprocess.run(spark_cmd("broker", "stop"), env=env, capture_output=True, timeout=60)
