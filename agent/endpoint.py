"""Generate with a model served by an existing engine: an OpenAI-compatible server (vLLM) or Hugging Face TGI.

    WHAZZAT_LLM_ENDPOINT=http://gpu-box:8000 whazzat batch needs.txt --out results.jsonl
    whazzat batch needs.txt --llm-endpoint http://gpu-box:8000 --out results.jsonl

Same prompts, same parsers as the local model: the chain renders each prompt here, through
:func:`agent.prompts.render_prompt` with the served model's own tokenizer (its chat template), and the
server only completes it (``POST /v1/completions``, greedy). A batch of prompts goes out as concurrent
requests, and the server batches them on its side (vLLM and TGI batch continuously). See docs/serving.md.

Which served model: ``GET /v1/models`` lists them; we take ``--model`` when the server lists that name,
else a LoRA adapter named ``whazzat``, else the first adapter, else the first model. A server without
``/v1/models`` (older TGI) is asked ``GET /info`` instead.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.llms import BaseLLM
from langchain_core.outputs import Generation, LLMResult
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from agent.config import EMBEDDED_MODEL, Settings
from agent.errors import WhazzatError

log = logging.getLogger(__name__)

#: Name we look for among the server's models: the LoRA module name docs/serving.md uses.
ADAPTER_NAME = "whazzat"
#: Seconds to wait for one completion. Generation is slower than a search call, and a busy server queues.
READ_TIMEOUT = 120.0
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

_llms: dict[tuple[Any, ...], EndpointLLM] = {}
_llms_lock = threading.Lock()


class EndpointError(WhazzatError):
    """The model server cannot be used or failed to answer: the message says what to check."""


# --- what the server says (validated, tolerant of extra fields) -----------------------------------------
class ServedModel(BaseModel):
    """One entry of ``GET /v1/models``. vLLM sets ``parent`` for LoRA adapters and ``root`` to the path
    or Hub id the model was loaded from."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    root: str | None = None
    parent: str | None = None


class _ModelList(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: list[ServedModel] = Field(min_length=1)


class _Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str
    finish_reason: str | None = None


class _Completion(BaseModel):
    model_config = ConfigDict(extra="ignore")

    choices: list[_Choice] = Field(min_length=1)


class _Retryable(Exception):
    """Internal: a status worth another try."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


_RETRIED = (_Retryable, requests.ConnectionError, requests.Timeout)


# --- the LangChain LLM ----------------------------------------------------------------------------------
class EndpointLLM(BaseLLM):
    """Completions from a served model, one request per prompt, ``concurrency`` at a time."""

    endpoint: str = Field(description="Server base URL, without /v1.")
    model_name: str = Field(description="The served model (or LoRA adapter) to ask.")
    tokenizer: Any = Field(default=None, exclude=True, description="Renders prompts; None: plain layout.")
    concurrency: int = Field(default=8, ge=1, description="Requests in flight at once.")
    max_new_tokens: int = Field(default=48, ge=1, description="Used when the caller sets no limit.")
    connect_timeout: float = 5.0
    read_timeout: float = READ_TIMEOUT
    max_attempts: int = Field(default=3, ge=1)
    backoff_initial: float = Field(default=1.0, ge=0)
    backoff_max: float = Field(default=8.0, ge=0)
    _session: requests.Session = PrivateAttr(default_factory=requests.Session)

    @property
    def _llm_type(self) -> str:
        return "whazzat-endpoint"

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        body = self.request_options(kwargs.get("pipeline_kwargs") or {}, stop)
        if len(prompts) == 1:
            texts = [self._complete(prompts[0], body)]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
                texts = list(pool.map(lambda prompt: self._complete(prompt, body), prompts))
        return LLMResult(generations=[[Generation(text=text)] for text in texts])

    def request_options(self, options: dict[str, Any], stop: list[str] | None) -> dict[str, Any]:
        """The completion parameters for the chain's ``pipeline_kwargs`` (the local pipeline's spelling):
        greedy by default, like the local model, so the same need gives the same answer."""
        body: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": int(options.get("max_new_tokens", self.max_new_tokens)),
            "temperature": 0,
        }
        if options.get("do_sample"):
            body["temperature"] = float(options.get("temperature", 1.0))
            if options.get("top_p") is not None:
                body["top_p"] = float(options["top_p"])
        stops = [*(stop or []), *([options["stop_sequence"]] if options.get("stop_sequence") else [])]
        if stops:
            body["stop"] = stops
        return body

    def _complete(self, prompt: str, options: dict[str, Any]) -> str:
        body = {**options, "prompt": prompt}
        response = self._request("POST", "/v1/completions", json=body)
        if response.status_code != 200:
            raise EndpointError(
                f"the model server at {_shown(self.endpoint)} answered HTTP {response.status_code} "
                f"to a completion: {_server_message(response)}"
            )
        try:
            return _Completion.model_validate(response.json()).choices[0].text
        except (ValueError, ValidationError) as error:
            raise EndpointError(
                f"the model server at {_shown(self.endpoint)} sent a completion we cannot read ({error})"
            ) from None

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call with retries on connection errors, timeouts, 429 and 5xx; other answers are returned."""

        def attempt() -> requests.Response:
            response = self._session.request(
                method, self.endpoint + path, timeout=(self.connect_timeout, self.read_timeout), **kwargs
            )
            if response.status_code in _RETRY_STATUSES:
                raise _Retryable(response)
            return response

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(initial=self.backoff_initial, max=self.backoff_max),
            retry=retry_if_exception(lambda error: isinstance(error, _RETRIED)),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as error:
            return error.response
        except requests.Timeout:
            raise EndpointError(
                f"the model server at {_shown(self.endpoint)} did not answer in time"
            ) from None
        except requests.ConnectionError:
            raise EndpointError(
                f"cannot reach the model server at {_shown(self.endpoint)}; is it running? "
                "(see docs/serving.md)"
            ) from None


# --- building one from settings -------------------------------------------------------------------------
def normalize_endpoint(url: str) -> str:
    """The server's base URL: ``http(s)://host[:port][/prefix]`` without a trailing ``/v1``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise EndpointError(
            f"--llm-endpoint must be an http(s) URL such as http://localhost:8000 (got {url!r})"
        )
    path = parts.path.rstrip("/")
    for suffix in ("/v1/completions", "/v1"):
        path = path.removesuffix(suffix)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def load_endpoint_llm(settings: Settings) -> EndpointLLM:
    """The LLM for ``settings.llm_endpoint``, built once per process (finding the served model and
    loading its tokenizer take a moment)."""
    if not settings.llm_endpoint:
        raise EndpointError("no model server configured: pass --llm-endpoint URL or set WHAZZAT_LLM_ENDPOINT")
    endpoint = normalize_endpoint(settings.llm_endpoint)
    key = (endpoint, settings.model, settings.batch_size, str(settings.home_dir))
    with _llms_lock:
        if key not in _llms:
            _llms[key] = _build(endpoint, settings)
        return _llms[key]


def _build(endpoint: str, settings: Settings) -> EndpointLLM:
    llm = EndpointLLM(
        endpoint=endpoint,
        model_name="?",
        concurrency=settings.batch_size,
        max_new_tokens=settings.max_new_tokens_suggest,
        connect_timeout=settings.http_connect_timeout,
        max_attempts=settings.http_max_attempts,
        backoff_initial=settings.http_backoff_initial,
        backoff_max=settings.http_backoff_max,
    )
    llm._session.mount(endpoint, HTTPAdapter(pool_maxsize=settings.batch_size, max_retries=0))
    served = choose_model(served_models(llm), settings.model)
    llm.model_name = served.id
    llm.tokenizer = endpoint_tokenizer(settings, served)
    log.info("Generating with %s at %s", served.id, _shown(endpoint))
    return llm


def served_models(llm: EndpointLLM) -> list[ServedModel]:
    """The server's models: ``GET /v1/models`` (vLLM and others), else ``GET /info`` (TGI)."""
    response = llm._request("GET", "/v1/models")
    if response.status_code == 200:
        try:
            return _ModelList.model_validate(response.json()).data
        except (ValueError, ValidationError):
            pass  # not an OpenAI model list: try TGI's own description below
    info = llm._request("GET", "/info")
    if info.status_code == 200:
        try:
            model_id = info.json()["model_id"]
            return [ServedModel(id=str(model_id), root=str(model_id))]
        except (ValueError, KeyError, TypeError, ValidationError):
            pass
    raise EndpointError(
        f"{_shown(llm.endpoint)} does not look like an OpenAI-compatible model server "
        f"(GET /v1/models answered HTTP {response.status_code}); point --llm-endpoint at vLLM or TGI"
    )


def choose_model(models: list[ServedModel], wanted: str) -> ServedModel:
    """``wanted`` if served, else the ``whazzat`` adapter, else the first adapter, else the first model."""
    by_id = {model.id: model for model in models}
    for name in (wanted, ADAPTER_NAME):
        if name in by_id:
            return by_id[name]
    adapters = [model for model in models if model.parent]
    return adapters[0] if adapters else models[0]


def endpoint_tokenizer(settings: Settings, served: ServedModel) -> Any:
    """The served model's tokenizer, to render prompts with its chat template; None when not found
    (prompts then use a plain layout, which a chat model answers worse: a warning says so).

    Looked for in order: ``--model`` and the server's base model on this machine (a folder or the Hugging
    Face cache), the embedded SmolLM2 when that is what is served, then the same names on the Hub.
    """
    base = served.parent or served.root or served.id
    candidates = [settings.model] if settings.model != EMBEDDED_MODEL else []
    candidates.append(base)
    for candidate in candidates:
        tokenizer = _try_tokenizer(candidate, local_only=True)
        if tokenizer is not None:
            return tokenizer
    if "smollm2" in base.lower() or "smollm2" in served.id.lower():
        return _embedded_tokenizer(settings.home_dir)
    for candidate in candidates:
        if not Path(candidate).expanduser().exists():
            tokenizer = _try_tokenizer(candidate, local_only=False)
            if tokenizer is not None:
                return tokenizer
    log.warning(
        "No tokenizer found for the served model %r: prompts go out without its chat template. "
        "Pass --model with its Hub id or a local copy to fix that.",
        base,
    )
    return None


def _try_tokenizer(name: str, *, local_only: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=local_only)
    except Exception as error:  # noqa: BLE001 - not found, not a repo id, offline ...: try the next
        log.debug("no tokenizer at %r: %s", name, error)
        return None


def _embedded_tokenizer(home: Path) -> Any:
    """SmolLM2's tokenizer, from the converted model cache, else from the GGUF (slow once, then cached)."""
    from transformers import AutoTokenizer

    from agent.llm import EMBEDDED_CACHE_NAME, embedded_gguf_path

    models = home.expanduser() / "models"
    for folder in (models / EMBEDDED_CACHE_NAME, models / f"{EMBEDDED_CACHE_NAME}-tokenizer"):
        if (folder / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(folder)
    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(models / f"{EMBEDDED_CACHE_NAME}-tokenizer")
    return tokenizer


def _server_message(response: requests.Response) -> str:
    """The error text of an OpenAI-style (``{"error": {"message"}}``), vLLM or TGI error body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason or "no message"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        for key in ("message", "error", "detail"):
            if isinstance(body.get(key), str):
                return body[key][:300]
    return str(body)[:200]


def _shown(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""), parts.path, "", "")
    )
