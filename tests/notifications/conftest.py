"""Fixtures for notifications and webhooks: linked people and a local webhook receiver."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from linking.models import LinkSource
from linking.services import notifications
from linking.services.context import Actor
from linking.services.links import link_observer


@pytest.fixture(autouse=True)
def _no_retry_jitter(settings):
    """Retry times exact to the second (test_retries.py checks the jitter itself)."""
    settings.OBSERVERS_NOTIFICATION_RETRY_JITTER = 0


@pytest.fixture
def student(make_user, root_account):
    return make_user("Sam Student", root_account, email="sam@example.test")


@pytest.fixture
def observer(make_user, root_account):
    return make_user("Olive Observer", root_account, email="olive@example.test")


@pytest.fixture
def link_unplanned(system_actor):
    """link_unplanned(observer, student, root_account, source=...) -> the link, via the service.

    Its audit event is left pending, as a request leaves it.
    """

    def make(observer, student, root_account, *, source=LinkSource.PORTAL, actor=None):
        return link_observer(
            observer=observer,
            student=student,
            root_account=root_account,
            actor=actor or system_actor,
            source=source,
        )[0]

    return make


@pytest.fixture
def link(link_unplanned):
    """As link_unplanned, then its notifications planned, as the sender does before sending."""

    def make(*args, **kwargs):
        made = link_unplanned(*args, **kwargs)
        notifications.plan_all_pending()
        return made

    return make


@pytest.fixture
def staff_actor():
    return Actor.system("admin")


class Receiver:
    """A webhook receiver on 127.0.0.1 (HTTP/1.1, keep-alive), recording each request.

    ``statuses`` queues answers (a status, or (status, headers)); ``delay``
    is how long each answer takes; ``drip`` sends the answer one byte per
    ``drip`` seconds, as a stalling receiver would; ``hang_up`` closes each
    connection after the answer without saying so. It counts the
    connections it accepted and the most requests it had in hand at once.
    """

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list = []
        self.delay = 0.0
        self.drip = 0.0
        self.hang_up = False
        self.peers: set = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                with receiver.lock:
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                    receiver.peers.add(self.client_address)
                try:
                    length = int(self.headers.get("Content-Length", 0))
                    body = self.rfile.read(length).decode()
                    with receiver.lock:
                        receiver.requests.append(
                            {
                                "path": self.path,
                                "headers": dict(self.headers),
                                "body": body,
                                "at": time.time(),
                            }
                        )
                        answer = receiver.statuses.pop(0) if receiver.statuses else 200
                    status, extra = answer if isinstance(answer, tuple) else (answer, {})
                    if receiver.delay:
                        time.sleep(receiver.delay)
                    payload = json.dumps({"received": status < 300}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if receiver.drip:
                        for byte in payload:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(receiver.drip)
                    else:
                        self.wfile.write(payload)
                    if receiver.hang_up:
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/observers"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def bodies(self) -> list[dict]:
        return [json.loads(item["body"]) for item in self.requests]


@pytest.fixture
def allow_private_webhooks(settings):
    """Local receivers live on 127.0.0.1, which production refuses; these tests allow it."""
    settings.OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True


@pytest.fixture
def forbid_private_webhooks(settings):
    """Production's default: webhooks only reach public addresses."""
    settings.OBSERVERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False


@pytest.fixture
def receiver(allow_private_webhooks):
    """A running local receiver; posting to it needs private addresses allowed."""
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
