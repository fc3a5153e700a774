"""The default offline corpus: English sentences (a seeded grammar, and an English 3-gram for the open vocabulary),
spoken by many voices, in the LJSpeech layout.

`generate_corpus(out)` writes

    metadata.csv   id|text|normalized text
    splits.csv     id|split
    voices.csv     id|voice|speed|pitch      (voice is `<engine>:<voice>`, e.g. `espeak:en-us+m3`,
                                              `festival:kal_diphone@1.08`; speed in words/min, pitch 0-99)
    wavs/<id>.wav  16 kHz mono 16-bit

The engines (asr_poc.datasets.voices): espeak-ng's 8 accents x 15 variants, and Festival's voices recorded from
people (kal, ked diphones; slt HTS), each at several vocal-tract warps. Speed and pitch vary per utterance. The dev
and test sets are spoken by voices that training never hears, from every engine. The same seed and engines give
byte-identical files. `SyntheticDataset` reads the result.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

from tqdm.auto import tqdm

from ..io import atomic_write_text
from ..text import normalize_text
from .english_sentences import EnglishSentenceSampler
from .ljspeech import LJSpeechDataset
from .voices import engine
from .voices.base import SAMPLE_RATE, Line
from .voices.espeak import VARIANTS, available_accents, espeak_executable, speak_one

# --- sentences -------------------------------------------------------------------------------------------------

NAMES = """alice bob carol david emma frank grace henry isabel jack karen liam maria nathan olivia peter rachel
samuel tina victor wendy oscar hannah george felix diana martin sophie thomas laura""".split()
NOUNS = """dog cat horse bird rabbit fox tiger lion monkey donkey turtle snake eagle parrot duck goat camel beetle
spider farmer teacher doctor baker driver sailor soldier painter singer writer student neighbour pilot lawyer nurse
engineer gardener captain merchant stranger book table chair window door lamp bottle basket ladder hammer pencil
letter bridge river mountain forest village castle tower kettle candle blanket mirror clock engine bicycle wagon
boat ticket coin box glass dish apple orange lemon potato tomato cake biscuit sandwich carrot onion melon umbrella
jacket shoe hat key map picture piano guitar drum radio camera telephone computer envelope parcel newspaper
rope bucket shovel wheel feather stone shell flower tree cloud storm island""".split()
PLACES = """kitchen market station harbour library school church office garden cellar meadow valley museum bakery
factory hospital theatre airport park beach desert hotel prison palace garage attic barn cottage laboratory
square""".split()
ADJECTIVES = """big small old young quiet noisy bright dark heavy light tall short happy angry clever lazy brave
gentle strange famous ancient modern purple yellow green silver golden wooden broken empty crowded narrow wide warm
cold frozen wet dry rusty shiny sleepy hungry careful curious polite rude honest nervous proud lonely busy cheerful
ordinary enormous tiny red blue white black grey pink fresh rotten clean dirty expensive cheap soft hard smooth
rough loud simple""".split()
ADVERBS = """quickly slowly quietly loudly carefully happily suddenly gently badly bravely calmly eagerly easily
politely rarely secretly nervously proudly simply warmly angrily boldly cheerfully clumsily honestly kindly
patiently sadly silently softly""".split()
# regular transitive verbs: past tense adds -ed / -d / -ied
REGULAR_VERBS = """carry paint open close clean watch push pull lift follow visit borrow repair fix wash kick climb
cook deliver discover explore fold collect count describe destroy examine guard hunt invent measure mention move
notice offer order pick place polish print protect reach receive remember rescue return search share smell taste
touch trust weigh answer bury chase copy study""".split()
IRREGULAR_VERBS = dict(pair.split(":") for pair in """see:saw take:took find:found bring:brought buy:bought
catch:caught throw:threw build:built sell:sold draw:drew eat:ate hold:held keep:kept leave:left steal:stole
write:wrote break:broke choose:chose forget:forgot hide:hid lose:lost send:sent""".split())
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
MONTHS = "january february march april may june july august september october november december".split()
ORDINALS = """first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth
twentieth thirtieth""".split()
TIMES = "morning afternoon evening night".split()
PREPOSITIONS = "in near behind under beside inside outside across through above".split()
QUANTIFIERS = ["some", "many", "several", "these", "those", "a few", "no"]
ONES = """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
seventeen eighteen nineteen""".split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()

# --- voices ----------------------------------------------------------------------------------------------------

DEFAULT_ENGINES = ("espeak", "festival")
ENGINE_SHARE = {"espeak": 1.0, "festival": 1.0, "flite": 1.0}  # relative share of the utterances each engine speaks
RECORDED_WARPS = (0.86, 0.92, 1.0, 1.08, 1.16)  # vocal-tract warps: one recorded voice becomes five speakers
WARPS = {"espeak": (1.0,), "festival": RECORDED_WARPS, "flite": RECORDED_WARPS}
DEFAULT_ENGLISH_SHARE = 0.5  # share of sentences from the English 3-gram (english_sentences.py), the rest from
# the grammar: open-vocabulary text teaches a model that hears (whisper-ctc) to write what real speakers say, which
# the grammar's closed vocabulary does not (benchmarks/README.md, "Open-vocabulary text and two more voices")
TEXT_SEED_OFFSET = 7919  # the grammar-or-English choice's own random stream
HELD_OUT = {"test": 3, "dev": 2}  # voices per held-out split (each engine holds out at least one for test)
HELD_OUT_FRACTION = 0.05  # of the utterances, for each of dev and test
SPEED = (130, 200)  # words per minute
PITCH = (30, 70)
THOUSANDS = ("", "thousand", "million")

def number_words(n: int) -> str:
    """0..999,999,999 spelled out: 42 -> 'forty-two', 305 -> 'three hundred and five', 2024 -> 'two thousand and
    twenty-four'."""
    if n >= 1000:
        parts, group = [], 0
        while n:
            n, rest = divmod(n, 1000)
            if rest:
                parts.append(number_words(rest) + (f" {THOUSANDS[group]}" if group else ""))
            group += 1
        if len(parts) > 1 and " " not in parts[0].replace("-", "") and parts[0] != "zero":
            parts[0] = "and " + parts[0]  # 2024 -> two thousand and twenty-four
        return " ".join(reversed(parts))
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10 - 2] + (f"-{ONES[n % 10]}" if n % 10 else "")
    return f"{ONES[n // 100]} hundred" + (f" and {number_words(n % 100)}" if n % 100 else "")


def _suffix_s(word: str) -> str:
    """Plural noun or third-person verb: dish -> dishes, carry -> carries, potato -> potatoes."""
    if word.endswith(("s", "x", "ch", "sh")) or word in ("potato", "tomato"):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _past(verb: str) -> str:
    if verb in IRREGULAR_VERBS:
        return IRREGULAR_VERBS[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ied"
    return verb + "ed"


class SentenceGenerator:
    """Seeded English sentences (4-14 words) from a small grammar over a vocabulary of several hundred words;
    numbers (times, years, digit strings, money, counts) are written out as people say them."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.verbs = REGULAR_VERBS + list(IRREGULAR_VERBS)
        self.templates = [
            "{np} {past} {np}{pp}{adv}.",
            "{Name} will {verb} {pl}{pp}.",
            "{np} {third} {np} every {day}.",
            "{np} was {adj} and {adj}.",
            "there were {pl} in the {place}.",
            "on {day} {time} {Name} {past} {np} {adv_}.",
            "{np} {past} {np}, and {np} {past} {np}.",
            "in {month} {np} {past} {pl} near the {place}.",
            "{Name}'s {noun} is {adj}.",
            "{Name} didn't {verb} {np}{pp}.",
            "please {verb} {np} before {day}.",
            "on the {ordinal} of {month} {Name} {past} {number} {plural}.",
            "did {np} {verb} {np}{pp}?",
            "why did {Name} {verb} {np}?",
            "where is {np}?",
            "how many {plural} did {Name} {verb}?",
            "when will {Name} {verb} {np}{pp}?",
            "is {np} {adj}?",
            "who {past} {np}{pp}?",
            # everyday speech: pronouns, clauses, numbers as they are said
            "{pron} {past} {np} {when}.",
            "{pron} think {np} {past} {np}{pp}.",
            "{pron} could not {verb} {np} because it was {adj}.",
            "if you {verb} {np}, {Name} will be {adj}.",
            "{Name} said that {np} was {adj}.",
            "we {past} {np} and then {pron_o} went home.",
            "the train leaves at {clock}.",
            "let's meet at {clock} on {day}.",
            "{Name} was born in {year}.",
            "in {year} {np} {past} {np}.",
            "my number is {digits}.",
            "the code is {digits}, not {digits}.",
            "it costs {money}.",
            "{Name} paid {money} for {np}.",
            "{percent} percent of the {plural} were {adj}.",
            "please turn to page {number}.",
            "go {direction} {number} meters and then turn {side}.",
            "there are {big} people in the {place}.",
            "{Name} has {count} {plural} and {count} {plural}.",
            "{pron} need {count} {plural} by {day} {time}.",
        ]

    def _np(self) -> str:
        rng = self.rng
        det = rng.choice(["the", "the", "a", "this", "that", "my", "your", "his", "her", "our", "their", "every",
                          rng.choice(NAMES).capitalize() + "'s"])
        words = ([rng.choice(ADJECTIVES)] if rng.random() < 0.5 else []) + [rng.choice(NOUNS)]
        if det == "a" and words[0][0] in "aeiou":
            det = "an"
        return " ".join([det] + words)

    def _plural_np(self) -> str:
        rng = self.rng
        head = number_words(rng.choice([rng.randint(2, 12), rng.randint(13, 99), rng.randint(100, 999)]))
        head = rng.choice([head, head, rng.choice(QUANTIFIERS)])
        adj = [rng.choice(ADJECTIVES)] if rng.random() < 0.4 else []
        return " ".join([head] + adj + [_suffix_s(rng.choice(NOUNS))])

    def _clock(self) -> str:
        rng = self.rng
        hour, minute = ONES[rng.randint(1, 12)], rng.choice([0, 15, 30, 45, rng.randint(1, 59)])
        return rng.choice([f"{hour} o'clock" if minute == 0 else f"{hour} {'oh ' * (minute < 10)}{number_words(minute)}",
                           f"half past {hour}", f"a quarter to {hour}", f"{hour} {rng.choice(['a m', 'p m'])}"])

    def _year(self) -> str:
        year = self.rng.randint(1800, 2039)
        century, rest = divmod(year, 100)
        if 2000 <= year < 2010 or self.rng.random() < 0.3:
            return number_words(year)  # two thousand and five
        return f"{number_words(century)} {'hundred' if rest == 0 else ('oh ' * (rest < 10)) + number_words(rest)}"

    def _money(self) -> str:
        rng = self.rng
        whole, cents = rng.randint(1, 999), rng.choice([0, 50, 99, rng.randint(1, 99)])
        unit = rng.choice(["dollars", "pounds", "euros"])
        text = f"{number_words(whole)} {unit[:-1] if whole == 1 else unit}"
        return text + (f" and {number_words(cents)} cents" if cents and unit == "dollars" else
                       (f" {number_words(cents)}" if cents else ""))

    def _fill(self, field: str) -> str:
        rng = self.rng
        fillers = {
            "np": self._np,
            "pl": self._plural_np,
            "pp": lambda: f" {rng.choice(PREPOSITIONS)} the {rng.choice(PLACES)}" if rng.random() < 0.5 else "",
            "adv": lambda: f" {rng.choice(ADVERBS)}" if rng.random() < 0.4 else "",
            "adv_": lambda: rng.choice(ADVERBS),
            "verb": lambda: rng.choice(self.verbs),
            "past": lambda: _past(rng.choice(self.verbs)),
            "third": lambda: _suffix_s(rng.choice(self.verbs)),
            "adj": lambda: rng.choice(ADJECTIVES),
            "noun": lambda: rng.choice(NOUNS),
            "plural": lambda: _suffix_s(rng.choice(NOUNS)),
            "place": lambda: rng.choice(PLACES),
            "Name": lambda: rng.choice(NAMES).capitalize(),
            "day": lambda: rng.choice(DAYS).capitalize(),
            "month": lambda: rng.choice(MONTHS).capitalize(),
            "time": lambda: rng.choice(TIMES),
            "ordinal": lambda: rng.choice(ORDINALS),
            "number": lambda: number_words(rng.randint(2, 999)),
            "count": lambda: number_words(rng.choice([rng.randint(2, 12), rng.randint(13, 99)])),
            "big": lambda: number_words(rng.choice([rng.randint(1000, 9999), rng.randint(10, 999) * 1000,
                                                    rng.randint(1, 9) * 1000000])),
            "pron": lambda: rng.choice(["I", "you", "we", "they"]),
            "pron_o": lambda: rng.choice(["we", "they", "I"]),
            "when": lambda: rng.choice(["yesterday", "last week", "this morning", "an hour ago", "again",
                                        f"last {rng.choice(DAYS).capitalize()}", f"in {rng.choice(MONTHS).capitalize()}"]),
            "clock": self._clock,
            "year": self._year,
            "digits": lambda: " ".join(rng.choice(["oh", "zero"]) if d == 0 else ONES[d]
                                       for d in (rng.randint(0, 9) for _ in range(rng.randint(3, 7)))),
            "money": self._money,
            "percent": lambda: number_words(rng.randint(2, 99)),
            "direction": lambda: rng.choice(["forward", "back", "left", "right", "north", "south", "straight on"]),
            "side": lambda: rng.choice(["left", "right", "around"]),
        }
        return fillers[field]()

    def sentence(self) -> str:
        """One sentence of 4 to 14 words, capitalised and punctuated."""
        while True:
            template = self.rng.choice(self.templates)
            parts = template.replace("{", "\0{").replace("}", "}\0").split("\0")
            text = "".join(self._fill(p[1:-1]) if p.startswith("{") else p for p in parts)
            if 4 <= len(normalize_text(text).split()) <= 14:
                return text[0].upper() + text[1:]


# --- speech ----------------------------------------------------------------------------------------------------

_espeak = espeak_executable  # kept for callers that speak one line with espeak-ng
available_voices = available_accents


def _speak(exe: str, text: str, voice: str, speed: int, pitch: int, wav: Path) -> None:
    """Speak `text` with an espeak-ng `voice` into a 16 kHz `wav` (written atomically)."""
    speak_one(exe, text, voice, speed, pitch, wav)


def _write_lines(path: Path, lines: list[str]) -> None:
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def voice_pools(engines: dict[str, list[str]], rng: random.Random) -> dict[str, dict[str, list[str]]]:
    """{engine: {split: voices}}: each engine's voices (with warps) shuffled; test and dev get voices training never
    hears. The test split holds out HELD_OUT['test'] voices in all, at least one per engine, as does dev where the
    engine has voices enough."""
    pools = {}
    n_engines = len(engines)
    for k, (name, voices) in enumerate(engines.items()):
        combos = [f"{name}:{v}" + (f"@{w:g}" if w != 1.0 else "") for v in voices for w in WARPS.get(name, (1.0,))]
        rng.shuffle(combos)
        held = {split: max(1, n // n_engines + (k < n % n_engines)) for split, n in HELD_OUT.items()}
        if len(combos) < held["test"] + held["dev"] + 1:
            raise RuntimeError(f"voice engine {name!r} has only {len(combos)} voices: too few to hold some out")
        pools[name] = {"test": combos[: held["test"]], "dev": combos[held["test"]: held["test"] + held["dev"]],
                       "train": combos[held["test"] + held["dev"]:]}
    return pools


def generate_corpus(out: str | os.PathLike, utterances: int = 1500, seed: int = 0, jobs: int = 4,
                    progress: bool = True, engines: tuple[str, ...] | list[str] = DEFAULT_ENGINES,
                    english_share: float = DEFAULT_ENGLISH_SHARE) -> Path:
    """Write a synthetic corpus of `utterances` sentences to `out` (LJSpeech layout, 16 kHz) and return its path.

    `engines` names the voice engines (espeak, festival); each speaks an equal share of the utterances. Sentences,
    voices, speeds, pitches and splits all follow from `seed`. About 5 % of the utterances go to dev and 5 % to
    test, spoken by voices held out from training. `english_share` of the sentences come from the English 3-gram
    (`EnglishSentenceSampler`: open vocabulary), the rest from the grammar (numbers, times, money); the choice has
    its own random stream, so voices, speeds and splits do not depend on it. `metadata.csv` is written last, so an
    interrupted run never looks like a complete corpus.
    """
    if not 0.0 <= english_share <= 1.0:
        raise ValueError(f"english_share = {english_share}: must be between 0 and 1")
    if utterances < 1:
        raise ValueError(f"utterances = {utterances}: must be at least 1")
    if not engines:
        raise ValueError("engines: name at least one voice engine (espeak, festival)")
    speakers = {name: engine(name) for name in dict.fromkeys(engines)}  # raises if one is not installed
    out = Path(out)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    (out / "metadata.csv").unlink(missing_ok=True)  # the folder is incomplete until the end

    rng = random.Random(seed)
    pools = voice_pools({name: sp.voices() for name, sp in speakers.items()}, rng)

    ids = [f"syn-{i:05d}" for i in range(1, utterances + 1)]
    n_held = max(1, round(utterances * HELD_OUT_FRACTION)) if utterances >= 10 else 0  # per held-out split
    order = ids[:]
    rng.shuffle(order)
    split_of = {uid: "train" for uid in ids}
    split_of.update({uid: "test" for uid in order[:n_held]})
    split_of.update({uid: "dev" for uid in order[n_held: 2 * n_held]})

    names = list(speakers)
    shares = [ENGINE_SHARE.get(n, 1.0) for n in names]
    sentences = SentenceGenerator(seed)
    english = EnglishSentenceSampler(seed) if english_share > 0 else None
    text_rng = random.Random(seed + TEXT_SEED_OFFSET)
    rows = []  # (id, text, engine, voice, speed, pitch)
    for uid in ids:
        name = rng.choices(names, shares)[0]
        use_english = english is not None and text_rng.random() < english_share
        rows.append((uid, english.sentence() if use_english else sentences.sentence(), name, rng.choice(pools[name][split_of[uid]]),
                     rng.randint(*SPEED), rng.randint(*PITCH)))

    with tqdm(total=len(rows), desc="speaking", unit="utt", disable=not progress) as bar:
        for name, speaker in speakers.items():
            lines = [Line(text, voice.split(":", 1)[1], speed, pitch, out / "wavs" / f"{uid}.wav")
                     for uid, text, eng, voice, speed, pitch in rows if eng == name]
            speaker.speak(lines, jobs=jobs, done=bar.update)

    _write_lines(out / "splits.csv", [f"{uid}|{split_of[uid]}" for uid in ids])
    _write_lines(out / "voices.csv", [f"{uid}|{voice}|{speed}|{pitch}" for uid, _, _, voice, speed, pitch in rows])
    _write_lines(out / "metadata.csv", [f"{uid}|{text}|{normalize_text(text)}" for uid, text, *_ in rows])
    return out


class SyntheticDataset(LJSpeechDataset):
    """A corpus written by `generate_corpus` (the LJSpeech layout, with `splits.csv` for held-out voices)."""

    name = "synthetic"
    prepare_hint = "create it with: asr-poc prepare synthetic --out <path>"


DATASET = SyntheticDataset
