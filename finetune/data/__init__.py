"""The fine-tuning dataset: cleaning the original seed data, the build of the splits, the record schema.

    whazzat data build      # regenerates train/val/test/seed_test.jsonl and seed.jsonl

See finetune/data/README.md (the data card) for what is in the files and how they were checked.
"""
