"""Fine-tuning for Whazzat: recipes, the multi-task dataset, LoRA/QLoRA training and merging.

    whazzat finetune --recipe finetune/recipes/smollm2-135m-lora-cpu.yaml --set num_train_epochs=1
    whazzat merge --adapter finetune/adapters/smollm2-135m-whazzat --out merged/

Modules: :mod:`finetune.recipe` (validated YAML recipes), :mod:`finetune.dataset` (JSONL records to
prompt/completion examples), :mod:`finetune.modeling` (loading the base model, 4-bit or not),
:mod:`finetune.train`, :mod:`finetune.merge`, :mod:`finetune.model_card` and :mod:`finetune.cli`.
Importing this package loads no torch or transformers.
"""
