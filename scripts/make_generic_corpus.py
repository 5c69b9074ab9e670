"""Regenerate formless/data/generic_corpus.jsonl: the offline default statistics corpus.

ROCR protects "everything else" through second-moment statistics of MLP inputs over generic text.
The reference uses 100k Wikipedia documents; nothing like that can be downloaded here, so the
default corpus is text the default model writes itself, with sampling, about a broad list of
everyday topics (no famous people or works, so the statistics do not protect likely targets).
Users with real text pass ``--corpus FILE``. Run: python scripts/make_generic_corpus.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from formless.models import load_model
from formless.models.prompts import add_special_tokens, render

TOPICS = """
bread baking; growing tomatoes; the water cycle; how bicycles work; making coffee; rainforests; volcanoes;
the human heart; photosynthesis; saving money; learning a language; job interviews; dogs as pets; cats;
honey bees; the moon; tides; recycling; composting; electric cars; trains; airports; libraries; chess;
football rules; swimming; running a marathon; yoga; sleep; healthy breakfast; vitamins; the immune system;
earthquakes; deserts; glaciers; rivers; oceans; coral reefs; whales; penguins; elephants; birds migration;
weather forecasts; clouds; rainbows; thunderstorms; snow; seasons; calendars; clocks; maps; compasses;
the internet; email etiquette; passwords; spreadsheets; writing an essay; poetry forms; painting with
watercolors; playing guitar; pianos; orchestras; jazz; baking cookies; pasta; rice; soup; salads; cheese;
chocolate; tea; spices; kitchen safety; fire safety; first aid; hospitals; nurses; teachers; farmers;
carpenters; plumbers; electricians; bridges; skyscrapers; roads; traffic lights; cities; villages;
gardens; houseplants; forests; mushrooms; insects; butterflies; spiders; frogs; snakes; horses; cows;
sheep; chickens; fishing; boats; sailing; lighthouses; camping; hiking; mountains in general; caves;
rocks and minerals; soil; fossils; dinosaurs; the solar system; stars; telescopes; microscopes; cells;
DNA; bacteria; viruses; washing hands; dentists; eyes; ears; the brain; memory; emotions; friendship;
family dinners; birthdays; weddings; holidays; gifts; shopping; markets; money; banks; taxes; budgets;
small businesses; advertising; newspapers; radio; television; photography; cameras; films in general;
board games; puzzles; mathematics; fractions; geometry; algebra; statistics; probability; computers;
programming; databases; robots; batteries; solar panels; wind turbines; electricity; magnets; light;
sound; heat; temperature; water; salt; sugar; plastic; glass; paper; wood; metal; cotton; wool; clothes;
shoes; umbrellas; furniture; chairs; tables; beds; windows; doors; locks; keys; kitchens; bathrooms;
cleaning; laundry; ironing; sewing; knitting; pottery; woodworking; gardening tools; lawns; trees;
leaves in autumn; flowers; roses; sunflowers; apples; bananas; oranges; grapes; strawberries; potatoes;
carrots; onions; beans; corn; wheat; farming; tractors; irrigation; weather and crops; fishing boats;
ports; shipping containers; trucks; buses; taxis; bicycles in cities; walking; public parks; playgrounds;
schools; homework; exams; universities; scholarships; careers; resumes; meetings; teamwork; leadership;
time management; stress; meditation; breathing; posture; stretching; walking the dog; feeding birds;
aquariums; zoos; museums in general; art galleries; sculptures; pottery glazes; candles; soap; perfume;
""".replace("\n", " ")

STYLES = [
    "Write a short paragraph about {t}.",
    "Explain {t} to a curious student.",
    "Give three useful facts about {t}.",
    "Describe {t} in simple words.",
    "What should a beginner know about {t}?",
    "Write a short story that involves {t}.",
    "List some common questions people have about {t} and answer them briefly.",
]


def main(n_docs: int = 192, max_new_tokens: int = 144, seed: int = 0) -> None:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    topics = [t.strip() for t in TOPICS.split(";") if t.strip()]
    loaded = load_model("smollm2-135m-instruct")
    model, tok = loaded.model, loaded.tokenizer
    model.to(torch.bfloat16)
    tok.padding_side = "left"
    prompts = [rng.choice(STYLES).format(t=rng.choice(topics)) for _ in range(n_docs)]
    out_path = Path(__file__).resolve().parents[1] / "formless" / "data" / "generic_corpus.jsonl"
    docs = []
    for i in range(0, n_docs, 32):
        batch = prompts[i : i + 32]
        enc = tok(
            [render(tok, p) for p in batch],
            return_tensors="pt",
            padding=True,
            add_special_tokens=add_special_tokens(tok, True),
        )
        with torch.no_grad():
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=0.8,
                top_p=0.95,
                pad_token_id=tok.pad_token_id,
            )
        texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        docs += [{"prompt": p, "response": t.strip()} for p, t in zip(batch, texts)]
        print(f"{len(docs)}/{n_docs}", flush=True)
    out_path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    print("wrote", out_path)


if __name__ == "__main__":
    main()
