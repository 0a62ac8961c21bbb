"""Builds the quickstart dataset (weather notes → a fixed JSON shape) deterministically.

Run `python -m tuneforge.quickstart.make_data` to regenerate `data/train.jsonl` and `data/test.jsonl`.
Test notes use cities and phrasings never seen in training, so the metric measures the format and the
extraction, not memorisation."""

from __future__ import annotations

import json
import random
from pathlib import Path

TRAIN_CITIES = ["Oslo", "Lima", "Cairo", "Madrid", "Toronto", "Nairobi", "Hanoi", "Dublin", "Quito", "Perth",
                "Austin", "Lyon", "Porto", "Kyoto", "Denver", "Bergen", "Seville", "Krakow", "Chennai", "Tunis",
                "Havana", "Riga", "Zurich", "Manila", "Boston", "Accra", "Dakar", "Hobart", "Malaga", "Turin"]
TEST_CITIES = ["Vienna", "Santiago", "Lagos", "Seoul", "Helsinki", "Phoenix", "Naples", "Tallinn", "Osaka", "Lisbon"]
CONDITIONS = {"rain": ["raining", "pouring with rain", "drizzling"], "snow": ["snowing", "snowy"],
              "sun": ["sunny", "bright and sunny", "clear and sunny"], "cloud": ["cloudy", "overcast", "grey"],
              "fog": ["foggy", "misty"], "wind": ["windy", "blustery"]}
TRAIN_PATTERNS = [
    "Weather note: In {city} it is {temp} degrees and {cond}.",
    "{city} today: {cond}, around {temp}°C.",
    "Quick update from {city} - {temp} degrees, {cond}.",
    "It's {cond} in {city} right now, thermometer says {temp}.",
    "Forecast check: {city}, {temp} C, {cond} all afternoon.",
    "My friend in {city} says it is {cond} and {temp} degrees.",
]
TEST_PATTERNS = [
    "Reporting from {city}: {cond} skies and {temp} degrees Celsius.",
    "{city} this morning was {cond}, temperature {temp}.",
]


def record(city: str, temp: int, cond: str, phrase: str, pattern: str) -> dict:
    note = pattern.format(city=city, temp=temp, cond=phrase)
    answer = json.dumps({"city": city, "temp_c": temp, "condition": cond})
    return {"messages": [{"role": "user", "content": note}, {"role": "assistant", "content": answer}]}


def build(cities: list[str], patterns: list[str], n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        cond = rng.choice(sorted(CONDITIONS))
        out.append(record(rng.choice(cities), rng.randint(-12, 38), cond, rng.choice(CONDITIONS[cond]),
                          rng.choice(patterns)))
    return out


def main() -> None:
    here = Path(__file__).parent / "data"
    for name, rows in (("train", build(TRAIN_CITIES, TRAIN_PATTERNS, 240, seed=1)),
                       ("test", build(TEST_CITIES, TEST_PATTERNS, 24, seed=2))):
        (here / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
