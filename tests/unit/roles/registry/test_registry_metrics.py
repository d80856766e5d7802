# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""roles/registry/files/registry_metrics.py (the host's figures) and what registry_gc.py records of a run for it.

The file as Prometheus reads it from a deployed host: molecule/default's
test_metrics.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

FILES_DIR = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'registry', 'files')
sys.path.insert(0, FILES_DIR)
import registry_gc  # noqa: E402 pylint: disable=import-error,wrong-import-position
import registry_metrics  # noqa: E402 pylint: disable=import-error,wrong-import-position

NOW = 1_800_000_000.5


def samples(text):
    """{name: value} of the file's samples (no labels in it)."""
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and not line.startswith('#')}


def test_every_figure_known_is_written_with_its_help_and_type():
    gc = {'finished': NOW, 'succeeded': True, 'last_success': NOW, 'bytes_freed': 4096, 'deleted_tags': 3}
    text = registry_metrics.render(1_900_000_000, (1000, 250), gc, NOW)
    values = samples(text)
    assert values == {
        'selfhosted_registry_certificate_expiry_timestamp_seconds': 1_900_000_000,
        'selfhosted_registry_storage_size_bytes': 1000,
        'selfhosted_registry_storage_available_bytes': 250,
        'selfhosted_registry_gc_last_run_timestamp_seconds': NOW,
        'selfhosted_registry_gc_last_run_succeeded': 1,
        'selfhosted_registry_gc_last_success_timestamp_seconds': NOW,
        'selfhosted_registry_gc_last_freed_bytes': 4096,
        'selfhosted_registry_gc_last_deleted_tags': 3,
        'selfhosted_registry_metrics_updated_timestamp_seconds': NOW,
    }
    for name in values:
        assert '# HELP %s ' % name in text and '# TYPE %s gauge' % name in text, name
    assert text.endswith('\n')


def test_what_cannot_be_read_is_left_out():
    """No certificate, no filesystem storage, no garbage collection yet: only the time of writing."""
    assert list(samples(registry_metrics.render(None, None, {}, NOW))) == ['selfhosted_registry_metrics_updated_timestamp_seconds']


def test_certificate_expiry_is_the_certificates_not_after(tmp_path):
    key, certificate = tmp_path / 'key.pem', tmp_path / 'certificate.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                    '-keyout', str(key), '-out', str(certificate), '-subj', '/CN=registry.example.com', '-days', '10'],
                   check=True, capture_output=True)
    not_after = subprocess.run(['openssl', 'x509', '-noout', '-enddate', '-in', str(certificate)],
                               check=True, capture_output=True, text=True).stdout.strip().split('=', 1)[1]
    expiry = registry_metrics.certificate_expiry(str(certificate))
    assert expiry == registry_metrics.ssl.cert_time_to_seconds(not_after)
    assert registry_metrics.certificate_expiry(str(tmp_path / 'missing.pem')) is None
    assert registry_metrics.certificate_expiry(str(key)) is None


def test_main_writes_the_file_whole_and_readable(tmp_path):
    output = tmp_path / 'host.prom'
    assert registry_metrics.main(['--output', str(output), '--storage', str(tmp_path),
                                  '--gc-last-run', str(tmp_path / 'none.json')]) == 0
    values = samples(output.read_text())
    assert values['selfhosted_registry_storage_size_bytes'] >= values['selfhosted_registry_storage_available_bytes'] > 0
    assert 'selfhosted_registry_gc_last_run_timestamp_seconds' not in values
    assert oct(output.stat().st_mode & 0o777) == '0o644'
    assert not (tmp_path / 'host.prom.new').exists()


def test_gc_records_a_success_then_a_failure_keeping_the_last_success(tmp_path):
    record = tmp_path / 'gc-last-run.json'
    registry_gc.record_last_run(str(record), {'deleted_tags': [{}, {}], 'bytes_freed': 512}, now=100.0)
    registry_gc.record_last_run(str(record), None, now=200.0)
    assert json.loads(record.read_text()) == {'finished': 200.0, 'succeeded': False, 'last_success': 100.0,
                                              'deleted_tags': 2, 'bytes_freed': 512}
    values = samples(registry_metrics.render(None, None, registry_metrics.last_gc_run(str(record)), NOW))
    assert values['selfhosted_registry_gc_last_run_succeeded'] == 0
    assert values['selfhosted_registry_gc_last_success_timestamp_seconds'] == 100.0


def test_gc_records_nothing_without_a_file():
    registry_gc.record_last_run('', {'deleted_tags': [], 'bytes_freed': 0})
