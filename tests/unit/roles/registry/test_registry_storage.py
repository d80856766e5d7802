# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The S3 side of roles/registry/files/registry_storage.py that needs no bucket: the request signature (AWS's
published example) and how the registry's s3 settings address the bucket. Listing, reading and deleting tags run
against Ceph RGW in tests/integration/registry_cluster; the filesystem side is in test_registry_gc.py.
"""

from __future__ import annotations

import os
import sys

import pytest

FILES_DIR = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'registry', 'files')
sys.path.insert(0, FILES_DIR)
import registry_storage  # noqa: E402 pylint: disable=import-error,wrong-import-position

# The example credentials of AWS's Signature Version 4 documentation for S3.
EXAMPLE = {'accesskey': 'AKIAIOSFODNN7EXAMPLE', 'secretkey': 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'region': 'us-east-1'}


def test_the_signature_of_the_documented_list_objects_example():
    headers = registry_storage.signature_headers('GET', 'examplebucket.s3.amazonaws.com', '/', {'prefix': 'J', 'max-keys': '2'},
                                                 EXAMPLE, '20130524T000000Z')
    assert headers['authorization'] == (
        'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, '
        'SignedHeaders=host;x-amz-content-sha256;x-amz-date, '
        'Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7')


def test_a_changed_request_changes_the_signature():
    def signed(query):
        return registry_storage.signature_headers('GET', 'examplebucket.s3.amazonaws.com', '/', query, EXAMPLE, '20130524T000000Z')['authorization']
    assert signed({'prefix': 'K', 'max-keys': '2'}) != signed({'prefix': 'J', 'max-keys': '2'})


@pytest.mark.parametrize('s3, host, base, https, prefix', [
    # Ceph RGW or MinIO: the endpoint as given, the bucket in the path.
    ({'regionendpoint': 'http://10.0.0.5:7480', 'forcepathstyle': True, 'rootdirectory': '/registry/'},
     '10.0.0.5:7480', '/images', False, 'registry/'),
    # Without a scheme, secure decides.
    ({'regionendpoint': 'rgw.example.org', 'secure': False, 'forcepathstyle': True}, 'rgw.example.org', '/images', False, ''),
    # AWS: the region's endpoint, the bucket in the host name.
    ({'region': 'eu-west-1'}, 'images.s3.eu-west-1.amazonaws.com', '', True, ''),
    # The scheme's own port is no part of the Host header; another is.
    ({'regionendpoint': 'https://s3.example.org:443', 'forcepathstyle': True}, 's3.example.org', '/images', True, ''),
    ({'regionendpoint': 'http://s3.example.org:8080', 'forcepathstyle': True}, 's3.example.org:8080', '/images', False, ''),
    # An IPv6 address, with and without a port.
    ({'regionendpoint': 'http://[fd00::5]:7480', 'forcepathstyle': True}, '[fd00::5]:7480', '/images', False, ''),
    ({'regionendpoint': 'https://[fd00::5]', 'forcepathstyle': True}, '[fd00::5]', '/images', True, ''),
    # An endpoint's own path stays in front of the bucket.
    ({'regionendpoint': 'https://gateway.example.org/s3/', 'forcepathstyle': True}, 'gateway.example.org', '/s3/images', True, ''),
])
def test_the_bucket_is_addressed_as_the_registry_does(s3, host, base, https, prefix):
    storage = registry_storage.S3Storage(dict(s3, bucket='images', accesskey='a', secretkey='s'))
    assert (storage.host, storage.base, storage.https, storage.prefix) == (host, base, https, prefix)


@pytest.mark.parametrize('bucket, https, virtual', [('my.images', True, False), ('my.images', False, True), ('My_Images', True, False)])
def test_a_bucket_that_no_host_name_can_hold_is_addressed_in_the_path(bucket, https, virtual):
    # As the AWS SDK decides: no certificate covers a dotted name under s3.<region>.amazonaws.com.
    storage = registry_storage.S3Storage({'bucket': bucket, 'secure': https, 'accesskey': 'a', 'secretkey': 's'})
    assert (storage.host.startswith(bucket + '.'), storage.base) == ((True, '') if virtual else (False, '/' + bucket))


def test_s3_without_keys_is_not_read():
    # The registry then has its credentials from its environment or an instance role.
    assert registry_storage.storage_for({'s3': {'bucket': 'images', 'accesskey': '', 'secretkey': ''}}) is None


@pytest.mark.parametrize('text, epoch', [('2026-12-04T10:00:00.000Z', 1796378400.0), ('2026-12-04T10:00:00.250Z', 1796378400.25),
                                         ('2026-12-04T10:00:00Z', 1796378400.0), ('2026-12-04T11:00:00+01:00', 1796378400.0)])
def test_s3_timestamps(text, epoch):
    assert registry_storage.parse_time(text) == epoch


@pytest.mark.parametrize('text', [None, 'yesterday'])
def test_an_object_without_a_date_is_an_error_of_the_storage(text):
    with pytest.raises(registry_storage.StorageError, match='without a date'):
        registry_storage.parse_time(text)


class AnsweredStorage(registry_storage.S3Storage):
    """A bucket that answers every listing with `body`: answers no real service gives, to see them refused."""

    def __init__(self, body):
        super().__init__({'bucket': 'images', 'accesskey': 'a', 'secretkey': 's'})
        self.body = body

    def _checked(self, method, key='', query=None, expected=(200,)):
        return self.body


@pytest.mark.parametrize('contents, error', [
    ('<Contents><Size>1</Size><LastModified>2026-12-04T10:00:00Z</LastModified></Contents>', 'without a key'),
    ('<Contents><Key>docker/a</Key><Size>1</Size></Contents>', 'without a date'),
])
def test_a_listing_of_objects_without_a_key_or_a_date_is_an_error_of_the_storage(contents, error):
    body = ('<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">%s<IsTruncated>false</IsTruncated>'
            '</ListBucketResult>' % contents).encode()
    with pytest.raises(registry_storage.StorageError, match=error):
        AnsweredStorage(body).objects('docker/')
