#!/usr/bin/env bash
# Start a one-node Ceph cluster with radosgw on :7480 and make sure the S3
# user and bucket exist. Restart-safe: the monitor's and the OSD's stores,
# the keys and the configuration live in /var/lib/ceph (a volume) and are
# made only when missing. Environment (fixed test values by default):
#   S3_ACCESS_KEY / S3_SECRET_KEY  the S3 user's keys
#   S3_BUCKET                      the bucket to create
# /run/ceph/rgw.pid holds radosgw's process ID: `pkill -F` it to stop S3
# while the cluster runs; `ceph-entrypoint start-rgw` (docker exec) starts it again.
set -euo pipefail

STATE=/var/lib/ceph
CONF=$STATE/bootstrap/ceph.conf
export S3_ACCESS_KEY=${S3_ACCESS_KEY:-selfhosted-test-access}
export S3_SECRET_KEY=${S3_SECRET_KEY:-selfhosted-test-secret-key-not-secret}
S3_BUCKET=${S3_BUCKET:-registry}
RGW=client.rgw.a

start_rgw() {
  mkdir -p /run/ceph
  radosgw -n "$RGW" --pid-file /run/ceph/rgw.pid
  wait_for_rgw
}

wait_for_rgw() {
  local attempt
  for attempt in $(seq 120); do
    if curl --silent --output /dev/null http://127.0.0.1:7480/; then
      return 0
    fi
    sleep 0.5
  done
  echo "radosgw does not answer after $((attempt / 2)) s" >&2
  return 1
}

if [[ ${1:-} == start-rgw ]]; then
  start_rgw
  exit 0
fi

bootstrap() {
  local fsid osd_uuid
  fsid=$(uuidgen)
  mkdir -p "$STATE/bootstrap" "$STATE/mon/ceph-a" "$STATE/osd/ceph-0" "$STATE/radosgw/ceph-rgw.a"
  # Settings from FACTS: a cluster of one OSD, quick to form, small.
  cat >"$CONF.new" <<CONF
[global]
fsid = $fsid
mon_host = 127.0.0.1
mon_initial_members = a
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
paxos_propose_interval = 0.1
paxos_min_wait = 0.01
osd_memory_target = 1073741824
bluestore_block_create = true
bluestore_block_size = 10737418240
log_to_file = false
log_to_stderr = false
err_to_stderr = true
mon_cluster_log_to_file = false

[mon.a]
mon_data = $STATE/mon/ceph-a

[osd.0]
osd_data = $STATE/osd/ceph-0
keyring = $STATE/osd/ceph-0/keyring

[$RGW]
rgw_data = $STATE/radosgw/ceph-rgw.a
keyring = $STATE/radosgw/ceph-rgw.a/keyring
rgw_frontends = beast port=7480
CONF
  ln -sfn "$CONF.new" /etc/ceph/ceph.conf
  ceph-authtool --create-keyring "$STATE/bootstrap/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$STATE/bootstrap/admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$STATE/bootstrap/mon.keyring" --import-keyring "$STATE/bootstrap/admin.keyring" >/dev/null
  ln -sfn "$STATE/bootstrap/admin.keyring" /etc/ceph/ceph.client.admin.keyring
  monmaptool --create --addv a '[v2:127.0.0.1:3300,v1:127.0.0.1:6789]' --fsid "$fsid" "$STATE/bootstrap/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$STATE/bootstrap/monmap" --keyring "$STATE/bootstrap/mon.keyring"
  ceph-mon -i a
  osd_uuid=$(uuidgen)
  ceph osd new "$osd_uuid" 0 >/dev/null
  ceph-osd -i 0 --mkfs --mkkey --no-mon-config --osd-uuid "$osd_uuid"
  ceph auth add osd.0 osd 'allow *' mon 'allow profile osd' -i "$STATE/osd/ceph-0/keyring"
  ceph-osd -i 0
  ceph auth get-or-create "$RGW" mon 'allow rw' osd 'allow rwx' -o "$STATE/radosgw/ceph-rgw.a/keyring"
  # The marker of a finished bootstrap: a restart before this point starts over.
  mv "$CONF.new" "$CONF"
  ln -sfn "$CONF" /etc/ceph/ceph.conf
}

stop_all() {
  pkill -F /run/ceph/rgw.pid 2>/dev/null || true
  pkill -x ceph-osd || true
  pkill -x ceph-mon || true
  exit 0
}
trap stop_all TERM INT

mkdir -p /etc/ceph
if [[ -f $CONF ]]; then
  ln -sfn "$CONF" /etc/ceph/ceph.conf
  ln -sfn "$STATE/bootstrap/admin.keyring" /etc/ceph/ceph.client.admin.keyring
  ceph-mon -i a
  ceph-osd -i 0
else
  rm -rf "${STATE:?}"/*
  bootstrap
fi
start_rgw
radosgw-admin user info --uid registry >/dev/null 2>&1 ||
  radosgw-admin user create --uid registry --display-name registry \
    --access-key "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" >/dev/null
python3 /usr/local/lib/make-bucket.py "$S3_BUCKET"
echo "ready: s3 on :7480, bucket $S3_BUCKET"
# Keep the container while the daemons run; radosgw may be stopped on purpose.
while pgrep -x ceph-mon >/dev/null && pgrep -x ceph-osd >/dev/null; do
  sleep 1 &
  wait $! || true
done
echo "a Ceph daemon stopped" >&2
exit 1
