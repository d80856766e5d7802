# Copyright: selfhosted.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's tags in its storage, for retention (registry_gc.py).

The registry keeps no push date anywhere but in its storage: each tag's
``_manifests/tags/<tag>/current/link`` is written again on every push of the
tag, so its modification time (a file's mtime, an S3 object's LastModified)
is when the tag was last pushed. Deleting a tag is deleting what lies below
``_manifests/tags/<tag>/``, as the registry's own tag delete does.

Two drivers, as the role configures the registry (the same settings):
filesystem on the host, and S3 (AWS or compatible: Ceph RGW, MinIO...)
through its REST API, signed with Signature Version 4, standard library only.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import os
import re
import shutil
import ssl
import time
import urllib.parse
from xml.etree import ElementTree

# The layout below the storage's root, the same for every driver.
V2 = 'docker/registry/v2'
REPOSITORIES = V2 + '/repositories'
TAGS = '/_manifests/tags/'
# Answers worth another try, as the AWS SDK retries them (a busy or restarting service).
RETRIED_STATUSES = (500, 502, 503, 504)
ATTEMPTS = 3
# A bucket name that can go in a host name: the AWS SDK's rule for virtual-hosted addressing.
DNS_BUCKET = re.compile(r'\A[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z')


class StorageError(Exception):
    """The storage cannot be read or changed; the message says why."""


def storage_for(settings):
    """The storage of the role's settings: {'filesystem': {'rootdirectory': ...}} or {'s3': {...}}.

    None where it cannot be read: S3 without access keys (the registry then
    has its credentials from its environment or an instance role, which are
    not ours to use), or no storage in the settings.
    """
    if settings.get('s3'):
        return S3Storage(settings['s3']) if settings['s3'].get('accesskey') and settings['s3'].get('secretkey') else None
    if settings.get('filesystem'):
        return FilesystemStorage(settings['filesystem']['rootdirectory'])
    return None


class FilesystemStorage:
    """The filesystem driver's tree on this host."""

    def __init__(self, root):
        self.root = root

    def _tags_dir(self, repository):
        return os.path.join(self.root, REPOSITORIES, repository, '_manifests', 'tags')

    def tags(self):
        """{repository: [(tag, pushed)]}, pushed in seconds since the epoch."""
        top = os.path.join(self.root, REPOSITORIES)
        found = {}
        for directory, subdirectories, _files in os.walk(top):
            if '_manifests' in subdirectories:
                repository = os.path.relpath(directory, top)
                tags_dir = self._tags_dir(repository)
                entries = []
                for tag in sorted(os.listdir(tags_dir)) if os.path.isdir(tags_dir) else ():
                    try:
                        entries.append((tag, os.stat(os.path.join(tags_dir, tag, 'current', 'link')).st_mtime))
                    except OSError:
                        continue  # a tag cut short: not a tag the registry serves
                found[repository] = entries
            # Below a repository: its own data (_manifests, _layers, _uploads)
            # and the repositories nested in its name.
            subdirectories[:] = sorted(name for name in subdirectories if not name.startswith('_'))
        return found

    def digest(self, repository, tag):
        with open(os.path.join(self._tags_dir(repository), tag, 'current', 'link'), encoding='ascii') as handle:
            return handle.read().strip()

    def delete_tag(self, repository, tag):
        shutil.rmtree(os.path.join(self._tags_dir(repository), tag))

    def usage(self):
        """Bytes the registry's data takes on disk (allocated blocks)."""
        total = 0
        for directory, _subdirectories, files in os.walk(os.path.join(self.root, V2)):
            for name in files:
                try:
                    total += os.lstat(os.path.join(directory, name)).st_blocks * 512
                except OSError:
                    pass
        return total


def canonical_query(query):
    """The query string as Signature Version 4 signs it, and as it is sent: sorted, everything but A-Z a-z 0-9 - _ . ~
    percent-encoded."""
    return '&'.join('%s=%s' % (urllib.parse.quote(key, safe='-_.~'), urllib.parse.quote(str(value), safe='-_.~'))
                    for key, value in sorted(query.items()))


def signature_headers(method, host, path, query, credentials, amz_date, payload=b''):
    """The headers of a request signed with AWS Signature Version 4 (service s3).

    `path` is already URI-encoded; `query` a dict; `credentials` has accesskey,
    secretkey and region; `amz_date` is like 20130524T000000Z.
    """
    payload_hash = hashlib.sha256(payload).hexdigest()
    headers = {'host': host, 'x-amz-content-sha256': payload_hash, 'x-amz-date': amz_date}
    signed = ';'.join(sorted(headers))
    canonical_request = '\n'.join([method, path, canonical_query(query)]
                                  + ['%s:%s' % (name, headers[name]) for name in sorted(headers)]
                                  + ['', signed, payload_hash])
    scope = '%s/%s/s3/aws4_request' % (amz_date[:8], credentials['region'])
    string_to_sign = '\n'.join(['AWS4-HMAC-SHA256', amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ('AWS4' + credentials['secretkey']).encode()
    for part in (amz_date[:8], credentials['region'], 's3', 'aws4_request'):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    headers['authorization'] = 'AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s' % (
        credentials['accesskey'], scope, signed, signature)
    return headers


def parse_time(text):
    """An S3 timestamp (2026-12-04T10:00:00.000Z, or with an offset) in seconds since the epoch."""
    try:
        return datetime.datetime.fromisoformat(text.replace('Z', '+00:00')).timestamp()
    except (AttributeError, ValueError):
        raise StorageError('the bucket listed an object without a date S3 gives: %r' % (text,)) from None


def local_name(element):
    """An XML element's name without its namespace: S3-compatible services do not all use AWS's."""
    return element.tag.rsplit('}', 1)[-1]


class S3Storage:
    """The S3 driver's keys in the bucket, read as the registry's s3 settings say (regionendpoint, secure,
    forcepathstyle, rootdirectory), with its access keys."""

    def __init__(self, s3, timeout=30, page_size=None):
        self.credentials = {'accesskey': s3['accesskey'], 'secretkey': s3['secretkey'], 'region': s3.get('region') or 'us-east-1'}
        endpoint = s3.get('regionendpoint') or 's3.%s.amazonaws.com' % self.credentials['region']
        if '://' not in endpoint:
            endpoint = ('https://' if s3.get('secure', True) else 'http://') + endpoint
        url = urllib.parse.urlsplit(endpoint)
        self.https = url.scheme == 'https'
        self.bucket = s3['bucket']
        # The Host header leaves out the scheme's own port, as the AWS SDK
        # does; an IPv6 address keeps its brackets.
        name = '[%s]' % url.hostname if ':' in url.hostname else url.hostname
        authority = name if url.port in (None, 443 if self.https else 80) else '%s:%d' % (name, url.port)
        # Virtual-hosted as the SDK decides: not for a name that is no host
        # name, nor for one with dots over HTTPS (no certificate covers it).
        virtual = (not s3.get('forcepathstyle') and DNS_BUCKET.match(self.bucket) and '..' not in self.bucket
                   and not (self.https and '.' in self.bucket))
        path = url.path.rstrip('/')  # an endpoint's own path stays in front
        if virtual:
            self.host, self.base = self.bucket + '.' + authority, path
        else:
            self.host, self.base = authority, path + '/' + self.bucket
        self.timeout = timeout
        # Keys per listing: the service's own limit (1000) unless a test wants pages.
        self.page_size = page_size
        root = (s3.get('rootdirectory') or '').strip('/')
        self.prefix = root + '/' if root else ''

    def request(self, method, key='', query=None):
        """(status, body) of one signed request, tried again after a refused connection or a 5xx; key is below
        the bucket."""
        path = self.base + '/' + urllib.parse.quote(key, safe='/-_.~')
        query = query or {}
        target = path + ('?' + canonical_query(query) if query else '')
        for attempt in range(1, ATTEMPTS + 1):
            headers = signature_headers(method, self.host, path, query, self.credentials, time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()))
            if self.https:
                connection = http.client.HTTPSConnection(self.host, timeout=self.timeout, context=ssl.create_default_context())
            else:
                connection = http.client.HTTPConnection(self.host, timeout=self.timeout)
            try:
                connection.request(method, target, headers=headers)
                response = connection.getresponse()
                status, body = response.status, response.read()
            except (OSError, http.client.HTTPException) as error:
                if attempt == ATTEMPTS:
                    raise StorageError('%s %s://%s%s: %s' % (method, 'https' if self.https else 'http', self.host, path, error)) from None
                status, body = None, b''
            finally:
                connection.close()
            if status not in RETRIED_STATUSES + (None,) or attempt == ATTEMPTS:
                return status, body
            time.sleep(attempt)
        raise AssertionError('unreachable')

    def _checked(self, method, key='', query=None, expected=(200,)):
        status, body = self.request(method, key, query)
        if status not in expected:
            raise StorageError('%s of %r in bucket %s answered %d: %s' % (method, key, self.bucket, status, body[:500].decode('utf-8', 'replace')))
        return body

    def objects(self, below):
        """[(key, size, last modified)] of every object whose key starts with the root directory and `below`."""
        found, token = [], None
        while True:
            query = {'list-type': '2', 'prefix': self.prefix + below}
            if self.page_size:
                query['max-keys'] = str(self.page_size)
            if token:
                query['continuation-token'] = token
            body = self._checked('GET', query=query)
            try:
                page = ElementTree.fromstring(body)
            except ElementTree.ParseError:
                page = None
            if page is None or local_name(page) != 'ListBucketResult':
                raise StorageError('bucket %s answered a listing with no list of objects: %s'
                                   % (self.bucket, body[:300].decode('utf-8', 'replace')))
            fields = {local_name(child): child for child in page}
            for item in page:
                if local_name(item) == 'Contents':
                    values = {local_name(child): child.text for child in item}
                    if not values.get('Key'):
                        raise StorageError('bucket %s listed an object without a key' % self.bucket)
                    found.append((values['Key'], int(values.get('Size') or 0), parse_time(values.get('LastModified'))))
            token = getattr(fields.get('NextContinuationToken'), 'text', None)
            if getattr(fields.get('IsTruncated'), 'text', None) != 'true':
                return found
            if not token:
                raise StorageError('bucket %s cut a listing short without saying where it goes on' % self.bucket)

    def tags(self):
        """{repository: [(tag, pushed)]}: the current links under the repositories (one listing of them)."""
        found = {}
        top = self.prefix + REPOSITORIES + '/'
        for key, _size, modified in self.objects(REPOSITORIES + '/'):
            repository, separator, rest = key[len(top):].partition(TAGS)
            tag, _slash, leaf = rest.partition('/')
            # Repository names have no part that starts with "_", tags no "/".
            if separator and leaf == 'current/link':
                found.setdefault(repository, []).append((tag, modified))
        return {repository: sorted(entries) for repository, entries in found.items()}

    def digest(self, repository, tag):
        return self._checked('GET', self.prefix + REPOSITORIES + '/' + repository + TAGS + tag + '/current/link').decode('ascii').strip()

    def delete_tag(self, repository, tag):
        # The current link last: a run cut short leaves a tag that still
        # serves, and that the next run deletes.
        keys = [key for key, _size, _modified in self.objects(REPOSITORIES + '/' + repository + TAGS + tag + '/')]
        for key in sorted(keys, key=lambda key: key.endswith('/current/link')):
            self._checked('DELETE', key, expected=(200, 204))

    def usage(self):
        """Bytes of the registry's objects in the bucket."""
        return sum(size for _key, size, _modified in self.objects(V2 + '/'))
