"""Per run of the ablation: the dev and real-speech CER after each epoch, from events.jsonl (one line per run)."""
import json, sys
from pathlib import Path
for ev in sorted(Path(sys.argv[1]).glob("*/events.jsonl")):
    points = []
    for line in ev.read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("type") in ("eval", "extra_eval"):
            points.append({k: e.get(k) for k in ("type", "step", "dataset", "cer", "wer", "time")})
    cfg = (ev.parent / "config.yaml").read_text()
    print(json.dumps({"run": ev.parent.name, "points": points}))
