# Copyright: selfhosted.registry maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Images pushed and pulled over the registry's API with nothing but the standard library, for the integration tests."""

from __future__ import annotations

import hashlib
import http.client
import json
import time

MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'
LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar'
CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json'


def request(address, method, path, body=None, headers=None, port=5000, timeout=20):
    """(status, Location header, body) of one plain HTTP request to a registry."""
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader('Location'), response.read()
    finally:
        connection.close()


class ImageClient:
    """Pushes and pulls through `self.request(method, path, body=None, headers=None)`, which returns
    (status, Location header, body): a class that gives that method gets these."""

    def request(self, method, path, body=None, headers=None):
        raise NotImplementedError

    def answers(self, seconds=30):
        """Whether GET /v2/ answers 200 within `seconds` (a registry just started)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                if self.request('GET', '/v2/')[0] == 200:
                    return True
            except OSError:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def push_blob(self, repository, data):
        digest = 'sha256:' + hashlib.sha256(data).hexdigest()
        status, location, _body = self.request('POST', '/v2/%s/blobs/uploads/' % repository)
        assert status == 202, status
        status, _location, body = self.request('PUT', '%s%sdigest=%s' % (location, '&' if '?' in location else '?', digest),
                                               body=data, headers={'Content-Type': 'application/octet-stream'})
        assert status == 201, (status, body)
        return {'mediaType': LAYER_TYPE, 'digest': digest, 'size': len(data)}

    def push_image(self, repository, tag, layers):
        """An image of these layers (bytes each); its manifest's digest, the same for the same layers."""
        blobs = [self.push_blob(repository, data) for data in layers]
        config = json.dumps({'architecture': 'amd64', 'os': 'linux', 'rootfs': {'type': 'layers', 'diff_ids': [
            blob['digest'] for blob in blobs]}}).encode()
        manifest = {'schemaVersion': 2, 'mediaType': MANIFEST_TYPE,
                    'config': dict(self.push_blob(repository, config), mediaType=CONFIG_TYPE), 'layers': blobs}
        body = json.dumps(manifest).encode()
        status, _location, answer = self.request('PUT', '/v2/%s/manifests/%s' % (repository, tag), body=body,
                                                 headers={'Content-Type': MANIFEST_TYPE})
        assert status == 201, (status, answer)
        return 'sha256:' + hashlib.sha256(body).hexdigest()

    def pulls_whole(self, repository, reference):
        """The manifest and every blob it names answer 200 with the right digest."""
        status, _location, body = self.request('GET', '/v2/%s/manifests/%s' % (repository, reference),
                                               headers={'Accept': MANIFEST_TYPE})
        if status != 200:
            return False
        manifest = json.loads(body)
        for blob in [manifest['config']] + manifest['layers']:
            status, _location, data = self.request('GET', '/v2/%s/blobs/%s' % (repository, blob['digest']))
            if status != 200 or 'sha256:' + hashlib.sha256(data).hexdigest() != blob['digest']:
                return False
        return True
