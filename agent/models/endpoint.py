"""Generate with a model served by an existing engine: an OpenAI-compatible server (vLLM) or Hugging Face TGI.

    WHAZZAT_LLM_ENDPOINT=http://gpu-box:8000 whazzat batch needs.txt --out results.jsonl
    whazzat batch needs.txt --llm-endpoint http://gpu-box:8000 --out results.jsonl

Same prompts, same parsers as the local model: the chain renders each prompt here, through
:func:`agent.pipeline.prompts.render_prompt` with the served model's own tokenizer (its chat template), and the
server only completes it (``POST /v1/completions``, greedy). A batch of prompts goes out as concurrent
requests, and the server batches them on its side (vLLM and TGI batch continuously). See docs/serving.md.

Which served model: ``GET /v1/models`` lists them; we take ``--model`` when the server lists that name,
else a LoRA adapter named ``whazzat``, else the first adapter, else the first model. A server without
``/v1/models`` (older TGI) is asked ``GET /info`` instead.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import openai
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.llms import BaseLLM
from langchain_core.outputs import LLMResult
from langchain_openai import OpenAI
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.core.concurrency import Memo, map_in_threads
from agent.core.config import EMBEDDED_MODEL, Settings
from agent.core.errors import WhazzatError
from agent.core.http import HttpPolicy, TransportError, get_with_retries, make_session

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

#: Name we look for among the server's models: the LoRA module name docs/serving.md uses.
ADAPTER_NAME = "whazzat"
#: Least seconds to wait for a completion: generation is slower than a search call, and a busy server queues.
COMPLETION_READ_TIMEOUT = 120.0
#: vLLM and TGI ask for no key unless started with one; an explicit placeholder also keeps the openai
#: client from sending the user's OPENAI_API_KEY to a server that is not OpenAI's.
NO_API_KEY = "EMPTY"

_llms: Memo[tuple[Any, ...], EndpointLLM] = Memo()


class EndpointError(WhazzatError):
    """The model server cannot be used or failed to answer: the message says what to check."""


# --- what the server says about its models (validated, tolerant of extra fields) -------------------------
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


# --- the LangChain LLM ----------------------------------------------------------------------------------
class EndpointLLM(OpenAI):
    """langchain-openai's completions LLM, one request per prompt, ``concurrency`` at a time, taking the
    chain's ``pipeline_kwargs`` (the local pipeline's spelling) and failing with an :class:`EndpointError`.

    ``endpoint`` is the server's base URL without ``/v1``; a ``user:password@`` in it is sent as HTTP basic
    auth and kept out of the URL, so no message or repr shows it.
    """

    endpoint: str = Field(description="Server base URL, without /v1 and without credentials.")
    tokenizer: Any = Field(
        default=None, exclude=True, repr=False, description="Renders prompts; None: plain layout."
    )
    concurrency: int = Field(default=8, ge=1, description="Requests in flight at once.")
    temperature: float = 0.0

    # Async and streaming calls go through _generate too (in a thread), so they get the same requests.
    _agenerate = BaseLLM._agenerate
    _stream = BaseLLM._stream
    _astream = BaseLLM._astream

    @model_validator(mode="before")
    @classmethod
    def _from_endpoint(cls, values: Any) -> Any:
        if not isinstance(values, dict) or "endpoint" not in values:
            return values
        values = dict(values)
        endpoint = normalize_endpoint(values["endpoint"])
        parts = urlsplit(endpoint)
        values["endpoint"] = _shown(endpoint)
        values.setdefault("base_url", values["endpoint"] + "/v1")
        values.setdefault("api_key", NO_API_KEY)
        if parts.username or parts.password:
            credentials = (unquote(parts.username or ""), unquote(parts.password or ""))
            values.setdefault("http_client", openai.DefaultHttpxClient(auth=credentials))
        if "max_new_tokens" in values:  # the pipeline's spelling of max_tokens
            values["max_tokens"] = values.pop("max_new_tokens")
        return values

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
        options = self.request_options(kwargs.pop("pipeline_kwargs", None) or {}, stop)

        def complete(prompt: str) -> LLMResult:
            return self._complete(prompt, run_manager, {**kwargs, **options})

        results = map_in_threads(complete, prompts, self.concurrency)
        usage: Counter[str] = Counter()
        for result in results:
            usage.update((result.llm_output or {}).get("token_usage", {}))
        return LLMResult(
            generations=[result.generations[0] for result in results],
            llm_output={"token_usage": dict(usage), "model_name": self.model_name},
        )

    def request_options(self, options: dict[str, Any], stop: list[str] | None) -> dict[str, Any]:
        """The completion parameters for the chain's ``pipeline_kwargs`` (the local pipeline's spelling):
        greedy by default, like the local model, so the same need gives the same answer."""
        body: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": int(options.get("max_new_tokens", self.max_tokens)),
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

    def _complete(
        self, prompt: str, run_manager: CallbackManagerForLLMRun | None, options: dict[str, Any]
    ) -> LLMResult:
        """One prompt through langchain-openai (which retries as the policy allows), errors made plain."""
        try:
            return super()._generate([prompt], run_manager=run_manager, **options)
        except openai.APITimeoutError:
            raise EndpointError(f"the model server at {self.endpoint} did not answer in time") from None
        except openai.APIConnectionError:
            raise EndpointError(
                f"cannot reach the model server at {self.endpoint}; is it running? (see docs/serving.md)"
            ) from None
        except openai.APIStatusError as error:
            raise EndpointError(
                f"the model server at {self.endpoint} answered HTTP {error.status_code} "
                f"to a completion: {_server_message(error.body, error.response.text)}"
            ) from None
        except (openai.APIResponseValidationError, KeyError, TypeError, ValueError) as error:
            raise EndpointError(
                f"the model server at {self.endpoint} sent a completion we cannot read "
                f"({type(error).__name__})"
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
    return _llms.get(key, lambda: _build(endpoint, settings))


def _build(endpoint: str, settings: Settings) -> EndpointLLM:
    policy = HttpPolicy.from_settings(settings)
    served = choose_model(served_models(endpoint, policy), settings.model)
    completion_read = max(policy.read_timeout, COMPLETION_READ_TIMEOUT)
    llm = EndpointLLM(
        endpoint=endpoint,
        model_name=served.id,
        tokenizer=endpoint_tokenizer(settings, served),
        concurrency=settings.batch_size,
        max_new_tokens=settings.max_new_tokens_suggest,
        timeout=openai.Timeout(completion_read, connect=policy.connect_timeout),
        max_retries=policy.max_retries,
    )
    log.info("Generating with %s at %s", served.id, llm.endpoint)
    return llm


def served_models(endpoint: str, policy: HttpPolicy) -> list[ServedModel]:
    """The server's models: ``GET /v1/models`` (vLLM and others), else ``GET /info`` (TGI)."""
    with make_session(pool_size=1) as session:
        models = _get(session, endpoint, "/v1/models", policy)
        if models.status_code == 200:
            try:
                return _ModelList.model_validate(models.json()).data
            except (ValueError, ValidationError):
                pass  # not an OpenAI model list: try TGI's own description below
        info = _get(session, endpoint, "/info", policy)
    if info.status_code == 200:
        try:
            model_id = info.json()["model_id"]
            return [ServedModel(id=str(model_id), root=str(model_id))]
        except (ValueError, KeyError, TypeError, ValidationError):
            pass
    raise EndpointError(
        f"{_shown(endpoint)} does not look like an OpenAI-compatible model server "
        f"(GET /v1/models answered HTTP {models.status_code}); point --llm-endpoint at vLLM or TGI"
    )


def _get(session: requests.Session, endpoint: str, path: str, policy: HttpPolicy) -> requests.Response:
    """One GET as the policy says; any answer is returned, no answer at all is an EndpointError."""
    try:
        return get_with_retries(session, endpoint + path, policy=policy).response
    except TransportError as error:
        raise EndpointError(
            f"cannot reach the model server at {_shown(endpoint)} ({error} after {error.attempts} attempts); "
            "is it running? (see docs/serving.md)"
        ) from None


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

    from agent.models.paths import EMBEDDED_CACHE_NAME, embedded_gguf_path

    models = home.expanduser() / "models"
    for folder in (models / EMBEDDED_CACHE_NAME, models / f"{EMBEDDED_CACHE_NAME}-tokenizer"):
        if (folder / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(folder)
    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(models / f"{EMBEDDED_CACHE_NAME}-tokenizer")
    return tokenizer


def _server_message(body: object, text: str) -> str:
    """The error text of an OpenAI-style (``{"error": {"message"}}``), vLLM or TGI error body."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        for key in ("message", "error", "detail"):
            if isinstance(body.get(key), str):
                return body[key][:300]
    if body is None:
        return text[:200] or "no message"
    return str(body)[:200]


def _shown(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""), parts.path, "", "")
    )
