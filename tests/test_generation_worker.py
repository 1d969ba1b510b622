"""The generation worker: concurrent chats' model calls run one at a time, and the calls that wait
together are merged into one batched call, each caller getting back its own answers."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from agent.core.concurrency import BatchingWorker
from agent.core.config import get_settings
from agent.ui.services import Services
from tests.fakes import FakeWhazzatLLM
from tools.links import LinksBackend

WAIT_S = 30


def wait_for(condition: Any) -> None:
    """Poll ``condition`` (threads hand over asynchronously); fail rather than hang."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the condition never came true")
        time.sleep(0.005)


class Gate:
    """A batch function whose first call blocks until opened, recording the items of every call."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []
        self.entered = threading.Event()
        self.open = threading.Event()

    def __call__(self, items: list[Any]) -> list[Any]:
        self.calls.append(list(items))
        self.entered.set()
        self.open.wait(WAIT_S)
        return [f"answer to {item}" for item in items]


def in_thread(function: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = function(*args)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            out["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


def test_calls_waiting_together_run_as_one_and_each_gets_its_own_answers() -> None:
    worker, gate = BatchingWorker("test"), Gate()
    first, first_out = in_thread(worker.run, "greedy", ["a"], gate)
    assert gate.entered.wait(WAIT_S)
    second, second_out = in_thread(worker.run, "greedy", ["b", "c"], gate)
    third, third_out = in_thread(worker.run, "greedy", ["d"], gate)
    wait_for(lambda: worker.waiting == 2)

    gate.open.set()
    for thread in (first, second, third):
        thread.join(WAIT_S)

    assert gate.calls == [["a"], ["b", "c", "d"]]  # the two that waited together ran as one call
    assert first_out["value"] == ["answer to a"]
    assert second_out["value"] == ["answer to b", "answer to c"]
    assert third_out["value"] == ["answer to d"]


def test_calls_of_another_kind_are_never_merged() -> None:
    worker, gate = BatchingWorker("test"), Gate()
    first, _ = in_thread(worker.run, "greedy", ["a"], gate)
    assert gate.entered.wait(WAIT_S)
    sampled, sampled_out = in_thread(worker.run, "sampled", ["b"], gate)
    greedy, greedy_out = in_thread(worker.run, "greedy", ["c"], gate)
    wait_for(lambda: worker.waiting == 2)

    gate.open.set()
    for thread in (first, sampled, greedy):
        thread.join(WAIT_S)

    assert gate.calls == [["a"], ["b"], ["c"]]
    assert sampled_out["value"] == ["answer to b"] and greedy_out["value"] == ["answer to c"]


def test_a_failing_call_fails_its_callers_and_the_worker_goes_on() -> None:
    worker = BatchingWorker("test")

    def broken(items: list[str]) -> list[str]:
        raise RuntimeError("the model ran out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        worker.run("greedy", ["a"], broken)
    assert worker.run("greedy", ["b"], lambda items: [item.upper() for item in items]) == ["B"]


class GatedLLM(FakeWhazzatLLM):
    """The fake model, whose first generate call waits until ``release`` is set; records every batch."""

    batches: list[list[str]] = []
    entered: Any = None
    release: Any = None

    def _generate(self, prompts: list[str], *args: Any, **kwargs: Any):  # noqa: ANN202
        self.batches.append(list(prompts))
        if len(self.batches) == 1:
            self.entered.set()
            self.release.wait(WAIT_S)
        return super()._generate(prompts, *args, **kwargs)


def test_concurrent_chats_each_get_their_own_answer_from_merged_batches() -> None:
    products = {"a kettle for tea": "electric kettle, tea infuser", "a lamp to read": "reading lamp, book light",
                "shoes to run": "running shoes, running socks"}
    llm = GatedLLM(products=products, rewrites={}, batches=[], prompts=[], entered=threading.Event(),
                   release=threading.Event())
    settings = get_settings(backend="links", paraphrases=0, memory_mode="model", semantic_dedup=False)
    services = Services(settings, llm=llm, backend_factory=lambda _settings: LinksBackend())
    chain = services.chain(settings)

    needs = list(products)
    first, first_out = in_thread(chain.invoke, needs[0])
    assert llm.entered.wait(WAIT_S)
    others = [in_thread(chain.invoke, need) for need in needs[1:]]
    wait_for(lambda: services.generation_worker.waiting == 2)
    llm.release.set()
    first.join(WAIT_S)
    for thread, _ in others:
        thread.join(WAIT_S)

    results = [first_out, *(out for _, out in others)]
    for need, out in zip(needs, results, strict=True):
        assert out["value"].need == need
        assert out["value"].products == products[need].split(", ")
    merged = llm.batches[1]
    assert any(needs[1] in prompt for prompt in merged) and any(needs[2] in prompt for prompt in merged)
