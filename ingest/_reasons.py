"""Why a file was rejected, in English (CLI, logs) and Chinese (web app).

One table so the CLI and the UI never disagree, and every rejection carries a specific reason.
"""

from __future__ import annotations

REASONS: dict[str, tuple[str, str]] = {
    "unsupported": (
        "unsupported file type {suffix!r} (supported: {supported})",
        "不支持的文件类型 {suffix!r}(支持:{supported})",
    ),
    "empty": ("empty file (0 bytes)", "空文件(0 字节)"),
    "blank": ("the file contains no text", "文件中没有文字内容"),
    "too_large": (
        "file is {size_mb:.1f} MB, over the {limit_mb:.0f} MB limit",
        "文件大小 {size_mb:.1f} MB,超过 {limit_mb:.0f} MB 的上限",
    ),
    "unreadable": ("cannot read the file: {detail}", "无法读取文件:{detail}"),
    "encrypted": (
        "PDF is encrypted and needs a password",
        "PDF 已加密,需要密码才能打开",
    ),
    "broken_pdf": ("damaged PDF that cannot be parsed: {detail}", "PDF 已损坏,无法解析:{detail}"),
    "too_many_pages": (
        "PDF has {pages} pages, over the {limit} page limit",
        "PDF 共 {pages} 页,超过 {limit} 页的上限",
    ),
    "no_text": (
        "no extractable text (scanned or broken fonts)",
        "没有可提取的文字(可能是扫描件或字体损坏)",
    ),
    "ocr_off": (
        "no text layer; the pages need OCR, which is off (set OCR=auto)",
        "没有文字层，需要 OCR 识别，但 OCR 已关闭（设置 OCR=auto 开启）",
    ),
    "ocr_unavailable": (
        "no text layer, and OCR cannot run here ({detail}); OCR needs rapidocr-onnxruntime "
        "(Python < 3.13)",
        "没有文字层，且本机无法运行 OCR（{detail}）；"
        "OCR 需要 rapidocr-onnxruntime（Python < 3.13）",
    ),
    "ocr_noise": (
        "OCR found only unreadable noise ({pages} page(s)); is the scan too blurred or small?",
        "OCR 识别结果只有无法辨认的噪声（{pages} 页），扫描件可能过于模糊或分辨率过低",
    ),
    "ocr_empty": (
        "no text found, not even by OCR",
        "未找到文字（OCR 也未识别出文字）",
    ),
    "bad_office": ("not a valid {kind} file: {detail}", "不是有效的 {kind} 文件:{detail}"),
    "bad_image": ("cannot open the image: {detail}", "无法打开图片:{detail}"),
    "binary": (
        "not a text file (binary content)",
        "不是文本文件(内容为二进制)",
    ),
    "encoding": (
        "cannot detect the text encoding",
        "无法识别文本编码",
    ),
    "bad_docx": ("not a valid DOCX file: {detail}", "不是有效的 DOCX 文件:{detail}"),
    "bad_jsonl": (
        "line {line}: {detail}",
        "第 {line} 行:{detail}",
    ),
    "duplicate_id": (
        "document id {doc_id!r} already belongs to {other}",
        "文档编号 {doc_id!r} 已被 {other} 使用",
    ),
    "duplicate_content": (
        "same content as {other}, already in the knowledge base",
        "内容与已入库的 {other} 相同",
    ),
    "save_failed": (
        "cannot save the uploaded file: {detail}",
        "无法保存上传的文件：{detail}",
    ),
    "bad_name": ("unusable file name: {detail}", "文件名不可用:{detail}"),
    "upload_too_large": (
        "upload is {size_mb:.1f} MB in all, over the {limit_mb:.0f} MB limit per upload",
        "本次上传共 {size_mb:.1f} MB,超过每次 {limit_mb:.0f} MB 的上限",
    ),
    "model_mismatch": (
        "knowledge base {kb!r} was built with {indexed}, not {current}; "
        "rebuild it with `zhiku ingest --reindex --kb {kb}` or set EMBEDDING_MODEL back",
        "知识库 {kb!r} 使用 {indexed} 构建,当前模型是 {current};"
        "请运行 `zhiku ingest --reindex --kb {kb}` 重建,或把 EMBEDDING_MODEL 改回原值",
    ),
    "unchanged": ("unchanged since it was ingested", "内容未变化，已跳过"),
    "gone": ("the file is gone", "文件已不存在，已移除"),
    "records_skipped": (
        "{count} records skipped: {first}",
        "跳过 {count} 条记录：{first_zh}",
    ),
    "internal": ("unexpected error: {detail}", "意外错误:{detail}"),
    # web pages and sites (ingest/web/)
    "bad_url": ("not a web address zhiku can fetch: {detail}", "无法抓取的网址:{detail}"),
    "http_status": (
        "the server answered HTTP {status} ({phrase})",
        "服务器返回 HTTP {status}({phrase})",
    ),
    "http_gone": (
        "the page is gone (HTTP {status})",
        "页面已不存在(HTTP {status})",
    ),
    "http_auth": (
        "the page needs a login (HTTP {status})",
        "页面需要登录才能访问(HTTP {status})",
    ),
    "login_page": (
        "a login page (a password form), not content: log in cannot be done for you",
        "这是登录页(含密码输入框),不是内容页,知库不会代为登录",
    ),
    "timeout": (
        "no answer within {seconds:g} s",
        "{seconds:g} 秒内没有响应",
    ),
    "unreachable": ("cannot reach the server: {detail}", "无法连接服务器:{detail}"),
    "too_many_redirects": (
        "too many redirects (a loop?): {detail}",
        "重定向次数过多(可能是循环重定向):{detail}",
    ),
    "offsite_redirect": (
        "redirected to {target}, outside the site being crawled",
        "被重定向到 {target},不在抓取的网站范围内",
    ),
    "robots": (
        "robots.txt of the site does not allow fetching it",
        "网站的 robots.txt 不允许抓取此页面",
    ),
    "page_too_large": (
        "the page is over the {limit_mb:g} MB limit",
        "页面超过 {limit_mb:g} MB 的上限",
    ),
    "content_type": (
        "content type {content_type!r} is not a page or a supported file",
        "内容类型 {content_type!r} 既不是网页也不是支持的文件格式",
    ),
    "no_main_text": (
        "no main text found on the page (only navigation or scripts?)",
        "页面上没有找到正文(只有导航或脚本?)",
    ),
    "endless_pattern": (
        "{count} pages in a row of the URL pattern {pattern}: an endless calendar or "
        "pagination, not followed further",
        "URL 模式 {pattern} 已连续出现 {count} 次:疑似无尽的日历或翻页,不再继续抓取",
    ),
    "page_limit": (
        "not fetched, with {left} more URLs found: the crawl reached its limit of {limit} pages",
        "未抓取(另有 {left} 个已发现的网址):已达到本次最多抓取 {limit} 个页面的上限",
    ),
    "not_modified": (
        "unchanged on the server (HTTP 304)",
        "服务器上未变化(HTTP 304),已跳过",
    ),
    "gone_pending": (
        "the page is gone (HTTP {status}); removed after {left} more sync(s) confirm it",
        "页面已不存在(HTTP {status});再确认 {left} 次同步后才会从知识库移除",
    ),
    "page_gone": (
        "the page is gone (HTTP {status}) {count} syncs in a row",
        "页面已连续 {count} 次同步不存在(HTTP {status}),已移除",
    ),
}


class Rejection(Exception):
    """A file (or one record of it) that cannot be ingested, with a reason a user can act on."""

    def __init__(self, code: str, **params: object) -> None:
        if code not in REASONS:
            raise ValueError(f"unknown rejection code {code!r}")
        self.code = code
        self.params = params
        super().__init__(self.en)

    @property
    def en(self) -> str:
        return REASONS[self.code][0].format(**self.params)

    @property
    def zh(self) -> str:
        return REASONS[self.code][1].format(**self.params)
