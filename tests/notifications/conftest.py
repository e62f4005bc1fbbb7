"""Fixtures for notifications and webhooks: linked people and a local webhook receiver."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from linking.models import LinkSource
from linking.services import notifications
from linking.services.context import Actor
from linking.services.links import link_observer


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
    """A webhook receiver on 127.0.0.1: records each request, answers with queued statuses."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode()
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                answer = json.dumps({"received": status < 300}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
