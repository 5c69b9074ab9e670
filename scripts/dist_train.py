"""Train one baseline on one concept and write the loss curve: the same run on one process or on
several (``accelerate launch``), so the two curves can be compared (tests/test_distributed.py, and
the real-model comparison in docs/big_models.md).

    python scripts/dist_train.py MODEL curve.json --steps 4
    accelerate launch --config_file configs/accelerate/cpu_ddp_2proc.yaml \\
        scripts/dist_train.py MODEL curve.json --steps 4

The forget set is the knowledge base's facts about the concept (no generated descriptions: they
would need minutes of generation on a real model and add nothing to the comparison); the retain
set is the shipped neutral corpus. With ``--out`` the run goes through ``unlearn`` instead, which
also writes the checkpoint (from the main process only).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("history", type=Path, help="JSON file for the per-step rows (main process)")
    parser.add_argument("--concept", default="Harry Potter")
    parser.add_argument("--method", default="npo")
    parser.add_argument("--method-options", default="{}", help="JSON, e.g. '{\"retain_weight\": 0}'")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4, help="the global batch")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16"])
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--out", type=Path, help="run through unlearn() and save the checkpoint here")
    args = parser.parse_args()

    from formless.knowledge import load
    from formless.knowledge.elicit import resolve_names
    from formless.methods import TrainConfig
    from formless.methods.data import training_material
    from formless.methods.distributed import launched_distributed, process_state
    from formless.methods.train import train
    from formless.methods.unlearn import corpus_retain, unlearn
    from formless.models import load_model

    start = time.perf_counter()
    loaded = load_model(args.model, dtype=getattr(torch, args.dtype), device="cpu")
    config = TrainConfig(
        method=args.method,
        method_options=json.loads(args.method_options),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        lora=not args.full,
        autocast=False,
        guard_every=0,
        max_length=args.max_length,
    )
    if args.out is not None:
        _, manifest = unlearn(
            args.concept, method=args.method, model=loaded, out=args.out, config=config, force=True
        )
        history = manifest["training"]["history"]
    else:
        kb = load()
        (concept,) = resolve_names(kb, [args.concept], loaded)
        forget, _ = training_material(kb, concept, form="qa")
        history = train(loaded, None, forget, corpus_retain(), config).history
    main = process_state().is_main_process if launched_distributed() else True
    if main:
        world = int(__import__("os").environ.get("WORLD_SIZE", "1"))
        record = {"processes": world, "seconds": round(time.perf_counter() - start, 1), "history": history}
        args.history.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
