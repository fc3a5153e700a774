"""Decode the carried Opus corpus back to 16 kHz WAV in the LJSpeech layout (on the GPU machine)."""
import shutil, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import soundfile as sf

src, dst = Path(sys.argv[1]), Path(sys.argv[2])

def one(p):
    x, r = sf.read(p, dtype="float32")
    sf.write(dst / "wavs" / (p.stem + ".wav"), x, r, subtype="PCM_16")

if __name__ == "__main__":
    (dst / "wavs").mkdir(parents=True, exist_ok=True)
    for f in ("metadata.csv", "splits.csv", "voices.csv"):
        shutil.copy(src / f, dst / f)
    with ProcessPoolExecutor(16) as pool:
        list(pool.map(one, sorted((src / "ogg").glob("*.ogg")), chunksize=64))
    print("decoded", len(list((dst / "wavs").glob("*.wav"))))
