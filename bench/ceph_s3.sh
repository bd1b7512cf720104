#!/usr/bin/env bash
# A one-node Ceph cluster (one monitor, one in-memory OSD, the RADOS Gateway) serving S3 on
# 127.0.0.1, for bench/chaos.py --broker-restart --s3-endpoint and bench/s3_probe.py.
#
#     apt-get install ceph-mon ceph-osd radosgw ceph-common nginx-light  # Debian 12: Ceph 16.2
#     bash bench/ceph_s3.sh start DIR [PORT]    # prints the endpoint (PORT, default 7481)
#     bash bench/ceph_s3.sh stop DIR
#
# Why: the broker's S3 storage rewrites each partition's watermark with conditional PUTs
# (If-Match / If-None-Match). npm's s3rver ignores them and loses acked records; moto keeps
# them but is too slow for a 1M-tick run (docs/reliability.md). The RADOS Gateway is the S3
# of a production Ceph and honours both, with one flaw in Ceph 16: it compares If-Match
# with the stored ETag without its quotes, so the quoted ETag that HTTP clients send back
# (as the broker's object_store does) always fails (412) and the broker retries forever.
# An nginx in front (PORT) strips the quotes. A rewritten header breaks a request's
# signature, so the bucket `spark` takes anonymous requests (a bucket policy) and clients
# send unsigned ones (AWS_SKIP_SIGNATURE=true for the broker). Nothing here is for
# production: authentication is off, the OSD keeps its objects in memory (memstore,
# OSD_BYTES, default 8 GiB), one copy of each. Stopping the cluster drops its data.
set -euo pipefail

usage="usage: ceph_s3.sh start|stop DIR [PORT]"
cmd=${1:?$usage}
dir=$(realpath -m "${2:?$usage}")
port=${3:-7481}
rgw_port=$((port - 1))
python=${PYTHON:-$(dirname "$0")/../.venv/bin/python}
conf="$dir/ceph.conf"

if [ "$cmd" = stop ]; then
    [ -e "$dir/nginx/nginx.conf" ] && nginx -c "$dir/nginx/nginx.conf" -s stop 2>/dev/null || true
    pids=$(cat "$dir"/*.pid 2>/dev/null || true)
    [ -n "$pids" ] && kill $pids 2>/dev/null || true
    for _ in $(seq 20); do
        alive=0
        for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && exit 0
        sleep 0.5
    done
    kill -9 $pids 2>/dev/null || true  # the memstore OSD can take long to let go
    exit 0
fi
[ "$cmd" = start ] || { echo "ceph_s3.sh: start or stop, not '$cmd'" >&2; exit 2; }
for exe in ceph-mon ceph-osd radosgw monmaptool radosgw-admin ceph nginx; do
    command -v "$exe" >/dev/null || {
        echo "ceph_s3.sh: $exe not found; apt-get install ceph-mon ceph-osd radosgw" \
            "ceph-common nginx-light" >&2
        exit 1
    }
done

mkdir -p "$dir"/{mon,osd,log,run,rgw,nginx}
fsid=$(cat /proc/sys/kernel/random/uuid)
cat > "$conf" <<EOF
[global]
fsid = $fsid
mon host = 127.0.0.1:6789
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
log file = $dir/log/\$name.log
pid file = $dir/\$name.pid
admin socket = $dir/run/\$name.asok
run dir = $dir/run
[mon]
mon data = $dir/mon/\$name
[osd]
osd data = $dir/osd/\$name
osd objectstore = memstore
# the script adds the OSD to the crush map itself; Ceph 16.2.15 sent the OSD's start-up
# crush commands with a null fsid, which the monitor refused ("wrong fsid"), and it exited
osd class update on start = false
osd crush update on start = false
memstore device bytes = ${OSD_BYTES:-8589934592}
osd max object name len = 460
osd max object namespace len = 64
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $dir/rgw
rgw dns name = localhost
rgw enable usage log = false
EOF

monmaptool --create --clobber --add a 127.0.0.1:6789 --fsid "$fsid" "$dir/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" 2>/dev/null
ceph-mon -c "$conf" -i a
for _ in $(seq 50); do ceph -c "$conf" -s >/dev/null 2>&1 && break; sleep 0.2; done

osd=$(ceph -c "$conf" osd create)
mkdir -p "$dir/osd/osd.$osd"
ceph-osd -c "$conf" -i "$osd" --mkfs 2>/dev/null
ceph -c "$conf" osd crush add "osd.$osd" 1.0 host=localhost root=default >/dev/null 2>&1 || true
ceph-osd -c "$conf" -i "$osd"
for _ in $(seq 100); do
    ceph -c "$conf" osd stat 2>/dev/null | grep -q "1 up" && break
    sleep 0.2
done

radosgw -c "$conf" -n client.rgw.a
for _ in $(seq 150); do
    (echo > "/dev/tcp/127.0.0.1/$rgw_port") 2>/dev/null && break
    sleep 0.2
done
radosgw-admin -c "$conf" user create --uid spark --display-name spark \
    --access-key spark --secret-key spark >/dev/null 2>&1 || true
"$python" - "$rgw_port" <<'PY'
import json
import sys

import boto3

s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                  aws_access_key_id="spark", aws_secret_access_key="spark")
s3.create_bucket(Bucket="spark")
s3.put_bucket_policy(Bucket="spark", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:*",
     "Resource": ["arn:aws:s3:::spark", "arn:aws:s3:::spark/*"]}]}))
PY

# $-variables of nginx are escaped; $dir, $port and $rgw_port are the script's
cat > "$dir/nginx/nginx.conf" <<EOF
daemon on;
pid $dir/nginx.pid;
error_log $dir/log/nginx.log warn;
worker_processes 1;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/nginx/body;
    proxy_temp_path $dir/nginx/proxy;
    client_max_body_size 0;
    map \$http_if_match \$if_match_bare {
        "~^\"(?<bare>[^\"]*)\"\$" \$bare;
        default \$http_if_match;
    }
    upstream rgw { server 127.0.0.1:$rgw_port; keepalive 64; }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://rgw;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header If-Match \$if_match_bare;
            proxy_request_buffering off;
            proxy_buffering off;
        }
    }
}
EOF
nginx -c "$dir/nginx/nginx.conf"
echo "http://127.0.0.1:$port"
