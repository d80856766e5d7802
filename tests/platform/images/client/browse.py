"""Open a page in headless Chromium as a user would, and report what it showed.

selfhosted-test-browse URL [--user NAME --password SECRET] [--expect TEXT]...
                            [--screenshot FILE] [--timeout SECONDS]

Chromium verifies TLS against the user's NSS database (~/.pki/nssdb), the
place a user adds a CA to. HTTP authentication challenges (the browser's
login prompt) are answered with --user and --password, as a user typing them.
The page is read once every --expect text is shown, or, without --expect,
once no request was made for a few seconds after it loaded. Prints JSON:
{"text": the page's visible text, "requests": [[method, url], ...],
 "responses": [[status, url], ...], "auth_challenges": count}.
Driven through the DevTools protocol (python3-websockets): no other tool.
"""

import argparse
import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from websockets.sync.client import connect

IDLE_SECONDS = 3


class Page:
    """One page target of Chromium, spoken to over the DevTools protocol.

    Events go to on_event as they arrive, also while a call waits for its
    answer; on_event answers them with send(), which does not wait."""

    CALL_TIMEOUT = 30

    def __init__(self, url, on_event):
        self._ws = connect(url, max_size=None)
        self._ids = itertools.count(1)
        self._on_event = on_event

    def send(self, method, **params):
        call_id = next(self._ids)
        self._ws.send(json.dumps({'id': call_id, 'method': method, 'params': params}))
        return call_id

    def call(self, method, **params):
        call_id = self.send(method, **params)
        deadline = time.monotonic() + self.CALL_TIMEOUT
        while True:
            message = self._receive(deadline - time.monotonic())
            if message is None:
                raise RuntimeError('%s: no answer within %d s' % (method, self.CALL_TIMEOUT))
            if message.get('id') == call_id:
                if 'error' in message:
                    raise RuntimeError('%s: %s' % (method, message['error']))
                return message.get('result', {})

    def pump(self, seconds):
        """Handle the events that arrive within SECONDS."""
        deadline = time.monotonic() + seconds
        while self._receive(deadline - time.monotonic()) is not None:
            pass

    def _receive(self, seconds):
        """The next message within SECONDS (None if none came), events handled on the way."""
        if seconds <= 0:
            return None
        try:
            message = json.loads(self._ws.recv(timeout=seconds))
        except TimeoutError:
            return None
        if 'method' in message:
            self._on_event(message['method'], message.get('params', {}))
        return message


def start_chromium(profile):
    process = subprocess.Popen(
        ['chromium', '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
         '--window-size=1280,900', '--user-data-dir=' + profile, '--remote-debugging-port=0',
         'about:blank'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = os.path.join(profile, 'DevToolsActivePort')
    for _attempt in range(300):
        if os.path.exists(port_file):
            with open(port_file, encoding='ascii') as handle:
                port = handle.readline().strip()
            if port:
                return process, int(port)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError('Chromium did not open its DevTools port within 30 s')


def page_target(port):
    with urllib.request.urlopen('http://127.0.0.1:%d/json/list' % port, timeout=10) as response:
        targets = json.load(response)
    return next(target['webSocketDebuggerUrl'] for target in targets if target['type'] == 'page')


def browse(args):
    report = {'requests': [], 'responses': [], 'auth_challenges': 0}
    state = {'last_request': time.monotonic(), 'loaded': False, 'page': None}

    def on_event(method, params):
        page = state['page']
        if method == 'Fetch.requestPaused':
            request = params['request']
            report['requests'].append([request['method'], request['url']])
            state['last_request'] = time.monotonic()
            page.send('Fetch.continueRequest', requestId=params['requestId'])
        elif method == 'Fetch.authRequired':
            report['auth_challenges'] += 1
            answer = ({'response': 'ProvideCredentials', 'username': args.user, 'password': args.password}
                      if args.user else {'response': 'CancelAuth'})
            page.send('Fetch.continueWithAuth', requestId=params['requestId'], authChallengeResponse=answer)
        elif method == 'Network.responseReceived':
            report['responses'].append([params['response']['status'], params['response']['url']])
        elif method == 'Page.loadEventFired':
            state['loaded'] = True

    profile = tempfile.mkdtemp(prefix='browse-')
    process, port = start_chromium(profile)
    try:
        page = state['page'] = Page(page_target(port), on_event)
        page.call('Network.enable')
        page.call('Page.enable')
        page.call('Fetch.enable', handleAuthRequests=True, patterns=[{'urlPattern': '*'}])
        page.call('Page.navigate', url=args.url)
        deadline = time.monotonic() + args.timeout
        text = ''
        while time.monotonic() < deadline:
            page.pump(0.5)
            text = page.call('Runtime.evaluate', expression='document.body ? document.body.innerText : ""',
                             returnByValue=True)['result'].get('value', '')
            if args.expect and all(expected in text for expected in args.expect):
                break
            if not args.expect and state['loaded'] and time.monotonic() - state['last_request'] > IDLE_SECONDS:
                break
        report['text'] = text
        if args.screenshot:
            shot = page.call('Page.captureScreenshot', format='png')
            with open(args.screenshot, 'wb') as handle:
                handle.write(base64.b64decode(shot['data']))
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(profile, ignore_errors=True)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('url')
    parser.add_argument('--user', default='')
    parser.add_argument('--password', default='')
    parser.add_argument('--expect', action='append', default=[])
    parser.add_argument('--screenshot')
    parser.add_argument('--timeout', type=float, default=30)
    report = browse(parser.parse_args())
    json.dump(report, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
