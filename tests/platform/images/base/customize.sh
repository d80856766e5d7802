# Runs inside the base root file system (see ../../build-rootfs-image).
# A small Debian to build fixture images from with `docker build`.

# Package scripts must not try to start services during `docker build`.
cat >/usr/sbin/policy-rc.d <<'POLICY'
#!/bin/sh
exit 101
POLICY
chmod 0755 /usr/sbin/policy-rc.d
