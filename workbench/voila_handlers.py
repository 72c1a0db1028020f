"""What the dashboard server's request handlers share: log lines that never show the token a URL
carried, and errors written as one line of text."""

from __future__ import annotations

import re

from tornado.log import access_log
from tornado.web import RequestHandler

TOKEN_IN_URL = re.compile(r"(?<=[?&])(token|_xsrf)=[^&#]*")


def scrub(uri: str) -> str:
    """A request URI fit for a log: `?token=...` (and `_xsrf`) replaced by `[secret]`."""
    return TOKEN_IN_URL.sub(lambda m: f"{m.group(1)}=[secret]", uri)


def log_request(handler: RequestHandler) -> None:
    """The server's access log: failures as warnings, the rest at debug level; no token shown."""
    status = handler.get_status()
    log = access_log.debug if status < 400 else access_log.warning
    log("%d %s %s (%s) %.0f ms", status, handler.request.method, scrub(handler.request.uri),
        handler.request.remote_ip, 1000 * handler.request.request_time())


class Discreet:
    """Logs the request it failed on without its token (tornado logs the URI as it came)."""

    def _request_summary(self) -> str:
        return f"{self.request.method} {scrub(self.request.uri)} ({self.request.remote_ip})"


def discreet(handler_class: type) -> type:
    """The same handler, with Discreet's log lines."""
    return type(handler_class.__name__, (Discreet, handler_class), {})


class PlainErrors:
    """Errors as one line of text (jupyter_server's error page needs a static path Voila does not set)."""

    def write_error(self, status_code: int, **kwargs) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(error, "log_message", None) or self._reason
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code}: {message}\n")
