"""Tiny random Llama models with a real tokenizer, for fast CPU tests.

Builds in well under a second: a byte-level BPE tokenizer trained with ``tokenizers`` on a few sentences,
given a ChatML-style chat template (the same layout SmolLM2 uses), and a 2-layer ``LlamaForCausalLM``.
Any test (fine-tuning, chain, evaluation) can use it instead of the real embedded model::

    from tests.tiny_models import make_tiny_llama

    def test_something(tmp_path):
        model_dir = make_tiny_llama(tmp_path)   # a directory for from_pretrained
"""

from __future__ import annotations

from pathlib import Path

#: ChatML, like SmolLM2-Instruct's template: the assistant turn ends with the EOS token ``<|im_end|>``.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<pad>", "<|im_start|>", "<|im_end|>"]

#: Enough text for BPE merges that keep the prompts short; any text still encodes (byte-level).
_CORPUS = [
    "You are Whazzat, a shopping assistant. Reply with generic product types (no brands) that meet the need,",
    "most useful first, separated by commas. Rewrite the need in different words, keeping its meaning,",
    "one rewrite per line. Need: something to dig food. Write 3 rewrites of this need:",
    "garden trowel, shovel, spade, gloves, hand rake, kneeling pad, watering can",
    "my back hurts after sitting all day: ergonomic chair, lumbar pillow, standing desk, foam roller",
    "gift for a dad who loves fishing: tackle box, fishing rod, fishing reel, lure set, cooler",
    "baking bread at home: bread machine, proofing basket, dough scraper, loaf pan, kitchen scale",
    "user assistant system",
]


def make_tiny_tokenizer(vocab_size: int = 400):
    """A ``PreTrainedTokenizerFast`` with pad/EOS tokens and :data:`CHAT_TEMPLATE`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def make_tiny_llama(
    tmp_path: Path, name: str = "tiny-llama", seed: int = 0, initializer_range: float = 0.1
) -> Path:
    """Save a random 2-layer Llama and its tokenizer under ``tmp_path/name``; return that directory.

    ``initializer_range`` is 5x Llama's 0.02: with weights that small a 64-wide model's logits are
    near zero whatever its hidden state, and a LoRA (which leaves ``lm_head`` alone) cannot move the loss
    in a few steps.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = make_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        initializer_range=initializer_range,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    out = Path(tmp_path) / name
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def make_random_lora(base: Path, out: Path, seed: int = 1) -> Path:
    """A LoRA adapter for ``base`` with random (non-zero) B matrices, so merging it changes the weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(out)
    return out
