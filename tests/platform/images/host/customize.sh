# Runs inside the host root file system (see ../../build-rootfs-image).
# Turns a debootstrapped Debian into a test host: systemd as PID 1 in a
# container, Ansible connects as root over SSH with a key.

# Each container makes its own SSH host keys when sshd first starts, instead
# of every host sharing the keys generated during the image build.
rm -f /etc/ssh/ssh_host_*
mkdir -p /etc/systemd/system/ssh.service.d
cat >/etc/systemd/system/ssh.service.d/host-keys.conf <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT

# A container has no kernel modules to load: the unit would fail and the host
# would report "degraded" instead of "running".
systemctl mask systemd-modules-load.service

# As in Debian's official container images (debuerreotype): a test host is
# thrown away, never recovered after a power loss, so dpkg need not fsync
# every file it unpacks (the roles install docker.io, certbot, skopeo).
echo force-unsafe-io >/etc/dpkg/dpkg.cfg.d/selfhosted-test-unsafe-io
