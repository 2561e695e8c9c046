"""The Ollama backend: a `ChatOllama` against `OLLAMA_HOST`, a reachability check, and the
translation of whatever the client raises into an actionable `LlmError` (English and Chinese).

What the client raises, as observed with ollama 0.6 / langchain-ollama 1.1 (LangChain neither
wraps nor translates any of it; `tests/app/test_llm_ollama.py` pins each case):
- server down or DNS failure: `httpx.ConnectError` from `.stream()`/`.invoke()`, but the
  builtin `ConnectionError` (wrapping it) from `Client.list()`;
- unknown model: `ollama.ResponseError`, status 404, `model "x" not found, try pulling it first`;
- any other HTTP error: `ollama.ResponseError` with its status and the server's `error` text;
  an `{"error": ...}` line inside a stream gives a `ResponseError` with status -1;
- no answer within the client timeout: `httpx.ReadTimeout` (`httpx.ConnectTimeout` when even
  the connection could not be made);
- connection closed mid-answer: `httpx.RemoteProtocolError` (incomplete chunked read), or
  `httpx.ReadError` when the connection was reset.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx
import ollama

from app._llm import LlmError
from ingest.settings import Settings

if TYPE_CHECKING:
    from langchain_ollama import ChatOllama

_DEFAULT_REGISTRY = "registry.ollama.ai"
_DEFAULT_NAMESPACE = "library"
_DEFAULT_TAG = "latest"


@dataclass(frozen=True)
class OllamaStatus:
    reachable: bool
    model_present: bool
    models: tuple[str, ...]  # the names the server lists, as it spells them
    error: LlmError | None

    @property
    def usable(self) -> bool:
        return self.reachable and self.model_present


# --- model names ---


def _canonical_name(name: str) -> tuple[str, str, str, str]:
    """(registry, namespace, model, tag) with Ollama's defaults filled in, case-folded.

    Ollama resolves `llama3` to `registry.ollama.ai/library/llama3:latest` and compares names
    case-insensitively, so `/api/tags` may spell a requested model differently.
    """
    name = name.strip().split("@", 1)[0].casefold()  # a pinned `@sha256-…` digest is optional
    path, _, last = name.rpartition("/")
    # The tag is only ever in the last segment: a colon before a slash is a registry's port.
    model, _, tag = last.partition(":")
    parts = path.split("/") if path else []
    if len(parts) >= 2:
        registry, namespace = parts[0], "/".join(parts[1:])
    elif len(parts) == 1:
        registry, namespace = _DEFAULT_REGISTRY, parts[0]
    else:
        registry, namespace = _DEFAULT_REGISTRY, _DEFAULT_NAMESPACE
    return registry, namespace, model, tag or _DEFAULT_TAG


def same_model(requested: str, listed: str) -> bool:
    """Whether `listed` (from `/api/tags`) is the model Ollama would run for `requested`."""
    return _canonical_name(requested) == _canonical_name(listed)


# --- messages ---


def _fallback(settings: Settings) -> tuple[str, str]:
    # Only `auto` falls back; with LLM_BACKEND=ollama the caller reports the error instead.
    if settings.llm_backend != "auto":
        return "", ""
    return " Meanwhile zhiku falls back to the embedded model.", "在此之前,知库会改用内置模型。"


def _not_reachable(host: str, detail: str, settings: Settings, *, fallback: bool) -> LlmError:
    fb_en, fb_zh = _fallback(settings) if fallback else ("", "")
    return LlmError(
        f"Ollama at {host} is not reachable ({detail}). Start it with `ollama serve`, "
        f"install it from https://ollama.com, or set OLLAMA_HOST to where it runs.{fb_en}",
        f"无法连接到 Ollama({host})。请先启动 Ollama:运行 `ollama serve`,"
        f"或从 https://ollama.com 安装;也可以设置 OLLAMA_HOST。{fb_zh}(错误信息:{detail})",
    )


def _not_ollama(host: str, detail: str, settings: Settings, *, fallback: bool) -> LlmError:
    fb_en, fb_zh = _fallback(settings) if fallback else ("", "")
    return LlmError(
        f"The server at {host} does not answer like Ollama ({detail}). Check that OLLAMA_HOST "
        f"points at an Ollama server (default http://localhost:11434).{fb_en}",
        f"{host} 上的服务不是 Ollama({detail})。请检查 OLLAMA_HOST 是否指向 Ollama 服务"
        f"(默认 http://localhost:11434)。{fb_zh}",
    )


def _bad_host(host: str, detail: str, settings: Settings, *, fallback: bool) -> LlmError:
    fb_en, fb_zh = _fallback(settings) if fallback else ("", "")
    return LlmError(
        f"OLLAMA_HOST={host} is not a usable address ({detail}). "
        f"Use a URL such as http://localhost:11434.{fb_en}",
        f"OLLAMA_HOST 的值 {host} 不是有效的地址({detail})。"
        f"请使用类似 http://localhost:11434 的地址。{fb_zh}",
    )


def _model_missing(
    model: str, host: str, installed: tuple[str, ...] | None, settings: Settings, *, fallback: bool
) -> LlmError:
    fb_en, fb_zh = _fallback(settings) if fallback else ("", "")
    if installed is None:
        have_en = have_zh = ""
    elif installed:
        have_en = f" Installed: {', '.join(installed)}."
        have_zh = f"已安装的模型:{'、'.join(installed)}。"
    else:
        have_en, have_zh = " No model is installed yet.", "目前还没有安装任何模型。"
    return LlmError(
        f"Ollama at {host} does not have the model {model}. "
        f"Download it with `ollama pull {model}`, or set OLLAMA_MODEL to an installed one."
        f"{have_en}{fb_en}",
        f"Ollama({host})中没有模型 {model}。请先下载:运行 `ollama pull {model}`;"
        f"也可以把 OLLAMA_MODEL 设为已安装的模型。{have_zh}{fb_zh}",
    )


def _timed_out(settings: Settings) -> LlmError:
    model, timeout = settings.ollama_model, settings.ollama_timeout_s
    return LlmError(
        f"Ollama ({model}) took longer than OLLAMA_TIMEOUT_S={timeout:g} seconds to answer. "
        "Try a smaller model (e.g. `ollama pull qwen2.5:1.5b` and OLLAMA_MODEL=qwen2.5:1.5b) "
        "or a larger OLLAMA_TIMEOUT_S; the first question after loading a model is the slowest.",
        f"Ollama 的模型 {model} 超过 {timeout:g} 秒(OLLAMA_TIMEOUT_S)仍未回答。"
        "可以换用更小的模型(例如运行 `ollama pull qwen2.5:1.5b` 并设置 "
        "OLLAMA_MODEL=qwen2.5:1.5b),或调大 OLLAMA_TIMEOUT_S;模型刚加载后的第一个问题最慢。",
    )


def _dropped(host: str, *, before_answer: bool) -> LlmError:
    if before_answer:
        return LlmError(
            f"Ollama at {host} closed the connection before answering. It may have crashed or "
            "run out of memory: check `ollama ps` and its log, then ask again.",
            f"Ollama({host})还没回答就断开了连接,可能已崩溃或内存不足。"
            "请用 `ollama ps` 和它的日志检查后重新提问。",
        )
    return LlmError(
        "Ollama closed the connection while answering; the partial answer is kept. "
        "It may have crashed or run out of memory: check `ollama ps` and its log.",
        "Ollama 在回答过程中断开了连接;已保留已收到的部分回答。"
        "Ollama 可能已崩溃或内存不足,请用 `ollama ps` 和它的日志检查。",
    )


def _response_error(exc: ollama.ResponseError, host: str) -> LlmError:
    text = str(exc.error).strip().rstrip("。.") or "(no message)"
    if exc.status_code < 0:  # an `{"error": ...}` line inside an otherwise good stream
        return LlmError(
            f"Ollama reported an error while answering: {text}",
            f"Ollama 在回答时报告了错误:{text}",
        )
    hint_en = hint_zh = ""
    if exc.status_code >= 500:
        hint_en = " If this repeats, restart Ollama (`ollama serve`) or use a smaller model."
        hint_zh = "如果反复出现,请重启 Ollama(`ollama serve`)或换用更小的模型。"
    return LlmError(
        f"Ollama at {host} answered with an error (HTTP {exc.status_code}): {text}.{hint_en}",
        f"Ollama({host})返回了错误(HTTP {exc.status_code}):{text}。{hint_zh}",
    )


# --- classification ---


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _detail(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def _is_model_not_found(exc: ollama.ResponseError) -> bool:
    # A bare 404 without "model" is some other web server (or a wrong path in OLLAMA_HOST).
    text = str(exc.error).lower()
    return (exc.status_code == 404 or "not found" in text) and "model" in text


def _classify(exc: BaseException, settings: Settings) -> LlmError | None:
    host = settings.ollama_host
    if isinstance(exc, LlmError):
        return exc
    if isinstance(exc, ollama.ResponseError):
        if _is_model_not_found(exc):
            return _model_missing(settings.ollama_model, host, None, settings, fallback=False)
        if exc.status_code == 404:
            return _not_ollama(host, f"HTTP 404: {exc.error}", settings, fallback=False)
        return _response_error(exc, host)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return _bad_host(host, _detail(exc), settings, fallback=False)
    if isinstance(exc, httpx.ConnectTimeout):
        return _not_reachable(host, "connection timed out", settings, fallback=False)
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return _timed_out(settings)
    if isinstance(exc, httpx.ConnectError | ConnectionRefusedError) or type(exc) is ConnectionError:
        # `type(...) is`: ConnectionResetError is a ConnectionError too, but means a drop.
        return _not_reachable(host, _detail(exc), settings, fallback=False)
    if isinstance(exc, httpx.RemoteProtocolError):
        before = "without sending a response" in str(exc)
        return _dropped(host, before_answer=before)
    if isinstance(exc, httpx.ReadError | ConnectionResetError | ConnectionAbortedError):
        return _dropped(host, before_answer=False)
    return None


def ollama_error(exc: BaseException, settings: Settings) -> LlmError:
    """An actionable message for what `ChatOllama.stream()`/`.invoke()` raised."""
    for link in _chain(exc):
        if (error := _classify(link, settings)) is not None:
            return error
    detail = f"{type(exc).__name__}: {_detail(exc)}"
    return LlmError(f"The Ollama request failed: {detail}", f"调用 Ollama 失败:{detail}")


# --- clients ---


def _client_kwargs(host: str, timeout_s: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"timeout": timeout_s}
    if _is_loopback(host):
        # httpx would send even localhost through HTTP(S)_PROXY / ALL_PROXY (it ignores the
        # system's proxy bypass list, and a SOCKS proxy without `socksio` fails outright);
        # a proxy can never help reach this machine's own Ollama.
        kwargs["trust_env"] = False
    return kwargs


def _is_loopback(host: str) -> bool:
    try:
        hostname = urlparse(host if "://" in host else f"http://{host}").hostname or ""
    except ValueError:  # e.g. an unclosed IPv6 bracket; the client will report it
        return False
    if hostname in {"", "localhost"}:
        return True  # the ollama client's default when no host is given is 127.0.0.1
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _unreachable(error: LlmError) -> OllamaStatus:
    return OllamaStatus(reachable=False, model_present=False, models=(), error=error)


def check_ollama(settings: Settings, timeout_s: float = 2.0) -> OllamaStatus:
    """Ask `/api/tags` whether Ollama runs at OLLAMA_HOST and has OLLAMA_MODEL. Never raises."""
    host, model = settings.ollama_host, settings.ollama_model
    try:
        client = ollama.Client(host=host, **_client_kwargs(host, timeout_s))
    except Exception as exc:  # e.g. an unparsable URL; never raise from a status check
        detail = f"{type(exc).__name__}: {_detail(exc)}"
        return _unreachable(_bad_host(host, detail, settings, fallback=True))
    try:
        with client:
            listed = client.list()
        models = tuple(m.model for m in listed.models if m.model)
    except ollama.ResponseError as exc:
        if exc.status_code == 404:  # no /api/tags: whatever answers is not Ollama
            detail = f"HTTP 404: {exc.error}"
            return _unreachable(_not_ollama(host, detail, settings, fallback=True))
        return OllamaStatus(True, False, (), _response_error(exc, host))
    except httpx.TimeoutException:
        detail = f"no answer within {timeout_s:g} s"
        return _unreachable(_not_reachable(host, detail, settings, fallback=True))
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return _unreachable(_bad_host(host, _detail(exc), settings, fallback=True))
    except (ConnectionError, httpx.TransportError) as exc:
        # The socket's reason, not the generic text ollama raises `from None` in its place.
        detail = _detail(exc.__cause__ or exc.__context__ or exc)
        return _unreachable(_not_reachable(host, detail, settings, fallback=True))
    except Exception as exc:  # a non-Ollama JSON body, ...: never raise from a status check
        detail = f"{type(exc).__name__}: {_detail(exc)}"
        return _unreachable(_not_ollama(host, detail, settings, fallback=True))

    if any(same_model(model, m) for m in models):
        return OllamaStatus(True, True, models, None)
    error = _model_missing(model, host, models, settings, fallback=True)
    return OllamaStatus(True, False, models, error)


def make_ollama_chat(
    settings: Settings, temperature: float | None = None, max_tokens: int | None = None
) -> ChatOllama:
    """A `ChatOllama` for OLLAMA_MODEL at OLLAMA_HOST; makes no request until it is used."""
    from langchain_ollama import ChatOllama  # only the Ollama backend pays for the import

    return ChatOllama(
        base_url=settings.ollama_host,
        model=settings.ollama_model,
        temperature=settings.llm_temperature if temperature is None else temperature,
        num_predict=settings.llm_max_tokens if max_tokens is None else max_tokens,
        client_kwargs=_client_kwargs(settings.ollama_host, settings.ollama_timeout_s),
    )
