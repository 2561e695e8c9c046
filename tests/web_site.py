"""A small web site for the web-ingestion tests: a real HTTP server on 127.0.0.1, no internet.

Pages are a dict the test may change between crawls (`site.pages[path] = ...`, `del`); the
server answers with ETag and Last-Modified, honours If-None-Match / If-Modified-Since with 304,
and counts the full (200) answers it gives per path, so a test sees which pages were sent whole.
Special paths: redirects, 404 (any unknown path), a 500, a slow page (timeouts), an endless
calendar (`/docs/calendar/YYYY/MM`, each month linking to the next and the previous), and a
switch that makes the whole site answer 503 (an outage).

    with WebSite() as site:
        site.url("/docs/")  # http://127.0.0.1:PORT/docs/
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Resource:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    modified: float = 0.0  # when it last changed (for Last-Modified)


def html(title: str, body: str, charset: str = "utf-8") -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="{charset}"><title>{title}</title></head>'
        f'<body><nav><a href="/docs/">帮助中心首页</a> · <a href="/docs/faq.html">常见问题</a>'
        f"</nav><main>{body}</main><footer>© 示例公司 · 京ICP备00000000号</footer></body></html>"
    )


class WebSite:
    def __init__(self) -> None:
        self.pages: dict[str, Resource] = {}
        self.redirects: dict[str, str] = {}
        self.full: Counter[str] = Counter()  # full (200) answers per path
        self.not_modified: Counter[str] = Counter()  # 304 answers per path
        self.down = False  # every request answers 503
        self.slow: dict[str, float] = {}  # path -> seconds to wait before answering
        self.errors: dict[str, int] = {}  # path -> status to answer with
        self.calendar_prefix = "/docs/calendar/"
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ----- content ----------------------------------------------------------------------

    def put(self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8"):
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self.lock:
            old = self.pages.get(path)
            if old is None or old.body != data or old.content_type != content_type:
                # one second later at least: Last-Modified has whole seconds
                stamp = max(time.time(), (old.modified + 1) if old else 0)
                self.pages[path] = Resource(data, content_type, stamp)

    def remove(self, path: str) -> None:
        with self.lock:
            self.pages.pop(path, None)

    # ----- serving ----------------------------------------------------------------------

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def __enter__(self) -> WebSite:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: bytes = b"",
              headers: dict[str, str] | None = None) -> None:  # fmt: skip
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        try:
            handler.end_headers()
            if body:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout being tested)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        query = urlsplit(handler.path).query
        if self.down:
            self._send(handler, 503, b"maintenance", {"Content-Type": "text/plain"})
            return
        if path in self.slow:
            time.sleep(self.slow[path])
        if path in self.errors:
            self._send(handler, self.errors[path], b"error", {"Content-Type": "text/plain"})
            return
        if path in self.redirects:
            target = self.redirects[path]
            self._send(handler, 301, b"", {"Location": target})
            return
        if path.startswith(self.calendar_prefix):
            self._calendar(handler, path)
            return
        with self.lock:
            resource = self.pages.get(path + ("?" + query if query else "")) or self.pages.get(path)
        if resource is None:
            self._send(handler, 404, b"not found", {"Content-Type": "text/plain"})
            return
        etag = '"' + hashlib.sha1(resource.body).hexdigest()[:16] + '"'
        modified = formatdate(resource.modified, usegmt=True)
        headers = {"ETag": etag, "Last-Modified": modified, "Content-Type": resource.content_type}
        if handler.headers.get("If-None-Match") == etag or (
            handler.headers.get("If-None-Match") is None
            and handler.headers.get("If-Modified-Since") == modified
        ):
            with self.lock:
                self.not_modified[path] += 1
            self._send(handler, 304, b"", {"ETag": etag, "Last-Modified": modified})
            return
        with self.lock:
            self.full[path] += 1
        self._send(handler, 200, resource.body, headers)

    def _calendar(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        try:
            year, month = (int(p) for p in path[len(self.calendar_prefix) :].strip("/").split("/"))
        except ValueError:
            self._send(handler, 404, b"not found")
            return
        nxt = (year + month // 12, month % 12 + 1)
        prev = (year - (month == 1), (month - 2) % 12 + 1)
        body = html(
            f"活动日历 {year} 年 {month} 月",
            f"<h1>活动日历 {year} 年 {month} 月</h1><p>本月暂无安排的活动,请关注下个月。</p>"
            f'<a href="{self.calendar_prefix}{prev[0]}/{prev[1]:02d}">上个月</a> '
            f'<a href="{self.calendar_prefix}{nxt[0]}/{nxt[1]:02d}">下个月</a>',
        ).encode()
        with self.lock:
            self.full[path] += 1
        self._send(handler, 200, body, {"Content-Type": "text/html; charset=utf-8"})


# ----- the help site the tests crawl ---------------------------------------------------------

INSTALL = html(
    "安装指南 - 星河云盘帮助中心",
    "<h1>安装指南</h1><p>星河云盘客户端支持 Windows、macOS 和 Linux 三种系统。</p>"
    "<h2>系统要求</h2><p>星河云盘客户端需要至少 4 GB 内存和 2 GB 可用磁盘空间。"
    "处理器需要支持 64 位指令集。</p>"
    "<h2>离线安装</h2><p>在没有网络的机器上,可以下载离线安装包 xinghe-offline.exe,"
    "双击后按提示完成安装。离线安装包每月更新一次。</p>"
    '<p>网络设置见 <a href="network/proxy.html">代理设置</a>。</p>',
)
PROXY = html(
    "代理设置",
    "<h1>代理设置</h1><h2>HTTP 代理</h2><p>如果公司网络需要代理,请在 设置 → 网络 中填写"
    "代理服务器地址,默认端口是 3128。客户端也会读取系统的 HTTPS_PROXY 环境变量。</p>",
)
FAQ = html(
    "常见问题",
    "<h1>常见问题</h1><h2>空间与套餐</h2><p>免费用户有 20 GB 存储空间,企业版每个成员有 1 TB。"
    "回收站里的文件保留 30 天后自动删除。</p><h2>Sharing links</h2>"
    "<p>A sharing link expires after 7 days unless the owner sets another expiry date.</p>",
)
GBK_PAGE = (
    "<html><head><title>售后服务政策</title></head><body><main><h1>售后服务政策</h1>"
    "<p>硬件产品自签收之日起享受两年免费保修,人为损坏不在保修范围内。"
    "售后服务热线的服务时间是每天早上九点到晚上九点。</p></main></body></html>"
).encode("gbk")
NEW_PAGE = html(
    "版本更新说明",
    "<h1>版本更新说明</h1><p>3.2 版新增了文件夹加密功能,"
    "加密后的文件夹需要输入六位数字密码才能打开。</p>",
)
LOGIN = (
    "<html><head><title>登录</title></head><body><form method=post action=/login>"
    "<input name=user><input type=password name=pw><button>登录</button></form></body></html>"
)
SECRET = html("内部资料", "<h1>内部资料</h1><p>这一页被 robots.txt 排除,不应出现在知识库中。</p>")
INDEX = html(
    "星河云盘帮助中心",
    "<h1>星河云盘帮助中心</h1><p>欢迎使用星河云盘。这里收录了安装、设置和常见问题的说明。</p>"
    '<ul><li><a href="guide/install.html">安装指南</a></li>'
    '<li><a href="faq.html">常见问题</a></li>'
    '<li><a href="gbk.html">售后服务政策</a></li>'
    '<li><a href="old-page.html">版本更新说明</a></li>'
    '<li><a href="private/">内部文档(需要登录)</a></li>'
    '<li><a href="internal/secret.html">内部资料</a></li>'
    '<li><a href="missing.html">已删除的页面</a></li>'
    '<li><a href="calendar/2024/01">活动日历</a></li>'
    '<li><a href="slow.html">慢页面</a></li>'
    '<li><a href="huge.html">超大页面</a></li>'
    '<li><a href="error.html">出错的页面</a></li>'
    '<li><a href="logo.png">标志图片</a></li>'
    '<li><a href="/files/manual.pdf">用户手册(PDF)</a></li>'
    '<li><a href="https://example.com/elsewhere">外部网站</a></li>'
    '<li><a href="/blog/post.html">博客(不在帮助中心路径下)</a></li></ul>',
)
MANUAL_LINES = [
    "星河云盘用户手册",
    "第一章 同步",
    "客户端默认每隔五分钟与服务器同步一次。",
    "同步冲突时保留两个版本,较新的版本加上冲突后缀。",
]


def build_help_site(site: WebSite, pdf: bytes) -> None:
    """The help centre under /docs/ with everything a crawl meets on a real site."""
    site.put("/robots.txt", "User-agent: *\nDisallow: /docs/internal/\n", "text/plain")
    site.put("/docs/", INDEX)
    site.redirects["/docs"] = "/docs/"
    site.put("/docs/guide/install.html", INSTALL)
    site.put("/docs/guide/network/proxy.html", PROXY)
    site.put("/docs/faq.html", FAQ)
    # GBK bytes, the charset only in the header (no <meta>): the header must be believed
    site.put("/docs/gbk.html", GBK_PAGE, "text/html; charset=GBK")
    site.redirects["/docs/old-page.html"] = "/docs/new-page.html"
    site.put("/docs/new-page.html", NEW_PAGE)
    site.redirects["/docs/private/"] = "/login?next=/docs/private/"
    site.put("/login", LOGIN)
    site.put("/docs/internal/secret.html", SECRET)
    site.put("/docs/slow.html", html("慢", "<p>这一页来得太慢。</p>"))
    site.slow["/docs/slow.html"] = 3.0
    site.put("/docs/huge.html", html("大", "<p>" + "很长的页面。" * 120_000 + "</p>"))
    site.errors["/docs/error.html"] = 500
    site.put("/docs/logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")
    site.put("/files/manual.pdf", pdf, "application/pdf")
    site.put("/blog/post.html", html("博客", "<p>不在帮助中心路径下。</p>"))
    sitemap = "".join(
        f"<url><loc>{site.url(p)}</loc></url>"
        for p in ("/docs/guide/install.html", "/docs/faq.html", "/blog/post.html")
    )
    site.put(
        "/docs/sitemap.xml",
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{sitemap}</urlset>',
        "application/xml",
    )
