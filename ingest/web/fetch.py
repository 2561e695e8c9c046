"""Fetching web pages politely: one HTTP GET with conditional headers, a size bound, a per-host
pause between requests and robots.txt obeyed; every failure a `Rejection` with its reason.

httpx does the HTTP (redirects, timeouts, streaming); `urllib.robotparser` reads robots.txt,
which is fetched with the same client so it gets the same timeouts and the same User-Agent.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from urllib.parse import urldefrag, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx

from ingest._reasons import Rejection

_MIB = 1024 * 1024
MAX_REDIRECTS = 5
ROBOTS_MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class Validators:
    """What a server said about a page's version: sent back to be told "304 not modified"."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Response:
    url: str  # after redirects, normalised
    status: int  # 200, or 304 when the validators sent still hold
    content_type: str  # lower case, without parameters ("" when the server gave none)
    charset: str | None  # the Content-Type's charset parameter
    body: bytes  # empty for a 304
    validators: Validators

    @property
    def not_modified(self) -> bool:
        return self.status == HTTPStatus.NOT_MODIFIED


def normalize_url(url: str) -> str:
    """One spelling per page: no fragment, lower-case scheme and host, no default port, a path
    of at least "/"."""
    url, _ = urldefrag(url.strip())
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = (
        host
        if port is None or (scheme, port) in (("http", 80), ("https", 443))
        else (f"{host}:{port}")
    )
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def is_web_url(text: str) -> bool:
    parts = urlsplit(text.strip())
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _media_type(header: str) -> tuple[str, str | None]:
    message = Message()
    message["content-type"] = header or "application/octet-stream"
    charset = message.get_param("charset")
    return message.get_content_type().lower(), str(charset) if charset else None


class Fetcher:
    """GETs with a pause of `delay_s` between two requests to one host (or robots.txt's
    Crawl-delay when longer), robots.txt obeyed for `user_agent`. Thread-safe; one per run."""

    def __init__(
        self,
        *,
        user_agent: str,
        timeout_s: float = 20.0,
        delay_s: float = 1.0,
        obey_robots: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.user_agent = user_agent
        self.timeout_s = timeout_s
        self.delay_s = delay_s
        self.obey_robots = obey_robots
        self._client = httpx.Client(
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=timeout_s,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            transport=transport,
        )
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # host -> monotonic time of the last request
        self._robots: dict[str, RobotFileParser | None] = {}
        self.requests = 0

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- politeness ---------------------------------------------------------------------

    def _wait_turn(self, url: str) -> None:
        host = urlsplit(url).netloc
        delay = self.delay_s
        robots = self._robots.get(host)
        if robots is not None:
            crawl_delay = robots.crawl_delay(self.user_agent)
            if crawl_delay is not None:
                delay = max(delay, float(crawl_delay))
        with self._lock:
            now = time.monotonic()
            start = max(now, self._last.get(host, -1e9) + delay)
            self._last[host] = start
        if start > now:
            time.sleep(start - now)

    def robots(self, url: str) -> RobotFileParser | None:
        """The site's robots.txt rules, read once per host; None when there are none."""
        parts = urlsplit(url)
        host = parts.netloc
        if host in self._robots:
            return self._robots[host]
        robots_url = urlunsplit((parts.scheme, host, "/robots.txt", "", ""))
        parser: RobotFileParser | None = RobotFileParser(robots_url)
        assert parser is not None
        try:
            self._wait_turn(robots_url)
            answer = self._client.get(robots_url)
            self.requests += 1
        except httpx.HTTPError:
            parser = None  # the pages' own fetches will say why the site cannot be reached
        else:
            if answer.status_code in (401, 403):
                parser.disallow_all = True  # as urllib.robotparser reads these answers
            elif answer.status_code >= 400:
                parser = None  # no robots.txt: everything is allowed
            else:
                text = answer.content[:ROBOTS_MAX_BYTES].decode("utf-8", "replace")
                parser.parse(text.splitlines())
        self._robots[host] = parser
        return parser

    def allowed(self, url: str) -> bool:
        if not self.obey_robots:
            return True
        parser = self.robots(url)
        return parser is None or parser.can_fetch(self.user_agent, url)

    # ----- one page ------------------------------------------------------------------------

    def get(self, url: str, max_bytes: int, validators: Validators | None = None) -> Response:
        """GET `url`; raise `Rejection` for anything but a usable answer (200, or 304 when
        `validators` were sent). Reads at most `max_bytes` of the body."""
        headers = {}
        if validators is not None:
            if validators.etag:
                headers["If-None-Match"] = validators.etag
            if validators.last_modified:
                headers["If-Modified-Since"] = validators.last_modified
        self._wait_turn(url)
        try:
            with self._client.stream("GET", url, headers=headers) as answer:
                self.requests += 1
                return self._read(answer, max_bytes)
        except httpx.TooManyRedirects as exc:
            raise Rejection("too_many_redirects", detail=str(exc)[:160]) from exc
        except httpx.TimeoutException as exc:
            raise Rejection("timeout", seconds=self.timeout_s) from exc
        except httpx.InvalidURL as exc:
            raise Rejection("bad_url", detail=str(exc)[:160]) from exc
        except httpx.UnsupportedProtocol as exc:
            raise Rejection("bad_url", detail=str(exc)[:160]) from exc
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise Rejection("unreachable", detail=detail[:160]) from exc

    def _read(self, answer: httpx.Response, max_bytes: int) -> Response:
        status = answer.status_code
        final = normalize_url(str(answer.url))
        validators = Validators(answer.headers.get("etag"), answer.headers.get("last-modified"))
        content_type, charset = _media_type(answer.headers.get("content-type", ""))
        if status == HTTPStatus.NOT_MODIFIED:
            return Response(final, status, content_type, charset, b"", validators)
        if status in (404, 410):
            raise Rejection("http_gone", status=status)
        if status in (401, 407):
            raise Rejection("http_auth", status=status)
        if status >= 300:
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = answer.reason_phrase or "unknown"
            raise Rejection("http_status", status=status, phrase=phrase)
        declared = answer.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise Rejection("page_too_large", limit_mb=max_bytes / _MIB)
        body = bytearray()
        for block in answer.iter_bytes():
            body += block
            if len(body) > max_bytes:
                raise Rejection("page_too_large", limit_mb=max_bytes / _MIB)
        return Response(final, status, content_type, charset, bytes(body), validators)
