"""Draw the pictures of docs/gallery.md: a score curve with the chosen frames marked, and a contact sheet.

By default it runs offline: a generated video (ffmpeg ``testsrc2`` with a drifting hue, 3 minutes) and the
tiny test checkpoint in ``tests/data/tspo_reference/checkpoint``, whose weights are random, so the pictures
show the mechanics (candidates, scores, chosen frames, timestamps) rather than meaningful choices. Point it at
the released agent and a real video to draw the same pictures for them:

    python docs/make_gallery.py                                   # offline example -> docs/assets/gallery/
    python docs/make_gallery.py --model hzf666/TSPO-0.4B --video match.mp4 --question "Who scores?" --out my_pics
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "tspo_reference" / "checkpoint"
OUT = ROOT / "docs" / "assets" / "gallery"


def plot_scores(selection, path: Path, title: str) -> None:
    """Score of every candidate over time; chosen frames as red dots with vertical guides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    times = np.asarray(selection.candidate_timestamps)
    scores = np.asarray(selection.scores, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=110)
    ax.plot(times, scores, color="#2a5bd7", linewidth=1.2, label="agent score per candidate")
    for t in selection.timestamps:
        ax.axvline(t, color="#f2a0a0", linewidth=0.8, zorder=0)
    ax.scatter([times[p] for p in selection.positions], [scores[p] for p in selection.positions],
               color="#d62728", s=22, zorder=3, label=f"chosen ({selection.method}, k={len(selection)})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(times.min(), times.max())
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(FIXTURE), help="checkpoint directory or Hub id (default: the test fixture)")
    p.add_argument("--video", default=None, help="video file (default: a generated 3-minute video)")
    p.add_argument("--question", default="When does the picture turn blue?", help="the question")
    p.add_argument("-k", type=int, default=8, help="frames to choose")
    p.add_argument("--method", default="topk", help="selection method")
    p.add_argument("--fps", type=float, default=1.0, help="candidates per second")
    p.add_argument("--out", default=str(OUT), help="output directory")
    args = p.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    from tspo_sampler import TemporalSampler
    from tspo_sampler.visualize import contact_sheet

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video
        if video is None:
            from media import make_long_video

            video = str(make_long_video(Path(tmp) / "example.mp4", 3.0, size=(640, 360), fps=5.0))
        sampler = TemporalSampler.from_pretrained(args.model, device="cpu", feature_cache=False)
        sel = sampler.select_frames(video, args.question, args.k, method=args.method, fps=args.fps, progress=False)
    name = "generated 3-minute video" if args.video is None else Path(args.video).name
    plot_scores(sel, out / "score_curve.png", f"{name}: \"{args.question}\"")
    contact_sheet(sel, out / "contact_sheet.png", columns=4, thumb_width=240)
    summary = {"video": name, "question": args.question, "model": Path(args.model).name,
               **sel.to_dict(include_scores=False)}
    summary["video"] = name
    (out / "selection.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out / 'score_curve.png'}, {out / 'contact_sheet.png'} and {out / 'selection.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
