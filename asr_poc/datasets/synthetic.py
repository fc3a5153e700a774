"""The default offline corpus: English sentences from a seeded grammar, spoken by espeak-ng, in the LJSpeech layout.

`generate_corpus(out)` writes

    metadata.csv   id|text|normalized text
    splits.csv     id|split
    voices.csv     id|voice|speed|pitch      (voice is `<espeak voice>+<variant>`)
    wavs/<id>.wav  22050 Hz mono 16-bit (espeak-ng's native format)

Many voice x variant combinations speak the training set; the dev and test sets are spoken by combinations that
training never hears. The same seed gives byte-identical files. `SyntheticDataset` reads the result.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from ..text import normalize_text
from ..training.checkpoint import atomic_write_text
from .ljspeech import LJSpeechDataset

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

VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")
HELD_OUT = {"test": 3, "dev": 2}  # voice combinations per held-out split
HELD_OUT_FRACTION = 0.05  # of the utterances, for each of dev and test
SPEED = (130, 200)  # words per minute
PITCH = (30, 70)
SAMPLE_RATE = 22050


def number_words(n: int) -> str:
    """0..999 spelled out: 42 -> 'forty-two', 305 -> 'three hundred and five'."""
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
    """Seeded English sentences (4-14 words) from a small grammar over a vocabulary of several hundred words."""

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


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed; install it with: sudo apt-get install espeak-ng")
    return exe


def available_voices(exe: str) -> list[str]:
    """The entries of `VOICES` that this espeak-ng has."""
    listing = subprocess.run([exe, "--voices=en"], capture_output=True, text=True, check=True).stdout
    languages = {line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 1}
    return [v for v in VOICES if v in languages]


def _speak(exe: str, text: str, voice: str, speed: int, pitch: int, wav: Path) -> None:
    """Speak `text` into `wav`, written under a temporary name and renamed when complete."""
    tmp = wav.with_name(f".{wav.name}.tmp")
    result = subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(tmp), text],
                            capture_output=True, text=True)
    if result.returncode != 0 or not tmp.is_file() or tmp.stat().st_size <= 44:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"espeak-ng failed for voice {voice!r} on {text!r}: {result.stderr.strip()[:200]}")
    os.replace(tmp, wav)


def _write_lines(path: Path, lines: list[str]) -> None:
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def generate_corpus(out: str | os.PathLike, utterances: int = 1500, seed: int = 0, jobs: int = 4,
                    progress: bool = True) -> Path:
    """Write a synthetic corpus of `utterances` sentences to `out` (LJSpeech layout) and return its path.

    Sentences, voices, speeds, pitches and splits all follow from `seed`. About 5 % of the utterances go to dev
    and 5 % to test, spoken by voice combinations held out from training. `metadata.csv` is written last, so an
    interrupted run never looks like a complete corpus.
    """
    if utterances < 1:
        raise ValueError(f"utterances = {utterances}: must be at least 1")
    exe = _espeak()
    out = Path(out)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    (out / "metadata.csv").unlink(missing_ok=True)  # the folder is incomplete until the end

    rng = random.Random(seed)
    voices = available_voices(exe) or ["en"]
    combos = [f"{v}+{variant}" for v in voices for variant in VARIANTS]
    rng.shuffle(combos)
    pools = {"test": combos[: HELD_OUT["test"]], "dev": combos[HELD_OUT["test"]: sum(HELD_OUT.values())],
             "train": combos[sum(HELD_OUT.values()):]}

    ids = [f"syn-{i:05d}" for i in range(1, utterances + 1)]
    n_held = max(1, round(utterances * HELD_OUT_FRACTION)) if utterances >= 10 else 0  # per held-out split
    order = ids[:]
    rng.shuffle(order)
    split_of = {uid: "train" for uid in ids}
    split_of.update({uid: "test" for uid in order[:n_held]})
    split_of.update({uid: "dev" for uid in order[n_held: 2 * n_held]})

    sentences = SentenceGenerator(seed)
    rows = []  # (id, text, voice, speed, pitch)
    for uid in ids:
        rows.append((uid, sentences.sentence(), rng.choice(pools[split_of[uid]]),
                     rng.randint(*SPEED), rng.randint(*PITCH)))

    with ThreadPoolExecutor(max(1, jobs)) as pool, \
            tqdm(total=len(rows), desc="espeak-ng", unit="utt", disable=not progress) as bar:
        futures = [pool.submit(_speak, exe, text, voice, speed, pitch, out / "wavs" / f"{uid}.wav")
                   for uid, text, voice, speed, pitch in rows]
        try:
            for future in as_completed(futures):
                future.result()
                bar.update()
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    _write_lines(out / "splits.csv", [f"{uid}|{split_of[uid]}" for uid in ids])
    _write_lines(out / "voices.csv", [f"{uid}|{voice}|{speed}|{pitch}" for uid, _, voice, speed, pitch in rows])
    _write_lines(out / "metadata.csv", [f"{uid}|{text}|{normalize_text(text)}" for uid, text, *_ in rows])
    return out


def prepare(out: str | os.PathLike, utterances: int = 1500, seed: int = 0, progress: bool = True) -> Path:
    """Command-line entry point: `asr-poc prepare synthetic --out <path>`."""
    return generate_corpus(out=out, utterances=utterances, seed=seed, progress=progress)


class SyntheticDataset(LJSpeechDataset):
    """A corpus written by `generate_corpus` (the LJSpeech layout, with `splits.csv` for held-out voices)."""

    name = "synthetic"
    prepare_hint = "create it with: asr-poc prepare synthetic --out <path>"


DATASET = SyntheticDataset
