"""Draw the truth's lines and zones on a frame of the video (docs/truth-lines.png) and the direction
rule on the built-in job's line (docs/direction.png).

Usage: ``python scripts/truth/draw_truth.py`` (from the repository root).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edge_runtime.assets import ensure  # noqa: E402
from scripts.truth.candidates import draw_item  # noqa: E402


def frame_at(video: Path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read frame {index} of {video}")
    return image


def label(image: np.ndarray, text: str, at, colour) -> None:
    x, y = int(at[0]), int(at[1])
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)


def main() -> int:
    spec = json.loads((ROOT / "benchmarks" / "truth" / "vtest.json").read_text())
    image = frame_at(ensure(spec["video"]), 300)
    for zone in spec["zones"]:
        draw_item(image, zone, True)
        label(image, f"{zone['name']} ({zone['split']})", zone["polygon"][0], (255, 255, 0))
    for line in spec["lines"]:
        draw_item(image, line, False)
        label(image, f"{line['name']} ({line['split']})", np.add(line["start"], (4, -6)), (255, 0, 255))
    out = ROOT / "docs"
    out.mkdir(exist_ok=True)
    cv2.imwrite(str(out / "truth-lines.png"), image)

    walkway = next(line for line in spec["lines"] if line["name"] == "walkway")
    image = frame_at(ensure(spec["video"]), 160)
    draw_item(image, walkway, False)
    s, e = np.array(walkway["start"]), np.array(walkway["end"])
    cv2.circle(image, tuple(int(v) for v in s), 6, (255, 0, 255), -1)
    label(image, "start", s + (8, 4), (255, 0, 255))
    cv2.arrowedLine(image, tuple(int(v) for v in (s + e) / 2 + (0, 90)), tuple(int(v) for v in e + (0, 20)),
                    (255, 0, 255), 1, tipLength=0.08)
    label(image, "end", e + (8, 4), (255, 0, 255))
    label(image, "facing start -> end, 'in' is left to right", (232, 455), (255, 255, 255))
    crop = image[100:470, 220:620]
    cv2.imwrite(str(out / "direction.png"), crop)
    print(f"wrote {out / 'truth-lines.png'} and {out / 'direction.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
