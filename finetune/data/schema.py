"""The record format of the built dataset (``finetune/data/{train,val,test,seed_test}.jsonl``).

One JSON object per line::

    {"need": "my wrists hurt when typing", "products": ["ergonomic keyboard", "wrist rest", ...],
     "paraphrases": ["typing makes my wrists ache", ...], "area": "office_work_from_home", "source": "written"}

Training code and tests read the files through :func:`read_records`, so a malformed line fails loudly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finetune.data.clean import has_brand

MIN_NEED_WORDS, MAX_NEED_WORDS = 3, 20
MIN_PRODUCT_WORDS, MAX_PRODUCT_WORDS = 1, 6
#: Written records carry 4-8 products; the original data mostly has 2 per need, so seed records may.
MIN_PRODUCTS_WRITTEN, MIN_PRODUCTS_SEED, MAX_PRODUCTS = 4, 2, 8
MAX_PARAPHRASES = 5

Source = Literal["seed", "written"]


def _words(text: str) -> int:
    return len(text.split())


class NeedRecord(BaseModel):
    """A need, the generic product types that answer it, and optional paraphrases of the need."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    need: str = Field(description="What a user might type, 3-20 words.")
    products: list[str] = Field(description="Generic product types, lowercase, 1-6 words each, no brands.")
    paraphrases: list[str] = Field(default_factory=list, description="Other ways to say the need (0-5).")
    area: str = Field(description="Everyday area, e.g. 'kitchen' (inferred by MiniLM for seed records).")
    source: Source = Field(description="'seed': the original project's data; 'written': this project's.")

    @field_validator("need")
    @classmethod
    def _need_words(cls, need: str) -> str:
        if need != need.strip() or "\n" in need:
            raise ValueError("need must be one line without outer spaces")
        if not MIN_NEED_WORDS <= _words(need) <= MAX_NEED_WORDS:
            raise ValueError(f"need must have {MIN_NEED_WORDS}-{MAX_NEED_WORDS} words: {need!r}")
        return need

    @field_validator("products")
    @classmethod
    def _product_shape(cls, products: list[str]) -> list[str]:
        for product in products:
            if product != product.lower() or product != product.strip():
                raise ValueError(f"product must be lowercase and stripped: {product!r}")
            if not MIN_PRODUCT_WORDS <= _words(product) <= MAX_PRODUCT_WORDS:
                raise ValueError(
                    f"product must have {MIN_PRODUCT_WORDS}-{MAX_PRODUCT_WORDS} words: {product!r}"
                )
            if has_brand(product):
                raise ValueError(f"product names a brand: {product!r}")
        if len(set(products)) != len(products):
            raise ValueError(f"duplicate products: {products}")
        return products

    @field_validator("paraphrases")
    @classmethod
    def _paraphrase_shape(cls, paraphrases: list[str]) -> list[str]:
        if len(paraphrases) > MAX_PARAPHRASES:
            raise ValueError(f"at most {MAX_PARAPHRASES} paraphrases")
        for paraphrase in paraphrases:
            if not MIN_NEED_WORDS - 1 <= _words(paraphrase) <= MAX_NEED_WORDS + 5:
                raise ValueError(f"paraphrase length out of range: {paraphrase!r}")
        return paraphrases

    @model_validator(mode="after")
    def _product_count(self) -> NeedRecord:
        low = MIN_PRODUCTS_SEED if self.source == "seed" else MIN_PRODUCTS_WRITTEN
        if not low <= len(self.products) <= MAX_PRODUCTS:
            raise ValueError(
                f"{self.source} records need {low}-{MAX_PRODUCTS} products, got {len(self.products)}"
            )
        if self.need in self.paraphrases:
            raise ValueError("a paraphrase repeats the need")
        return self


def read_records(path: Path) -> list[NeedRecord]:
    """Every record of a built JSONL file, validated (raises ``ValueError`` naming the bad line)."""
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(NeedRecord.model_validate(json.loads(line)))
        except ValueError as error:  # json and pydantic errors are both ValueErrors
            raise ValueError(f"{path}:{number}: {error}") from error
    return records
