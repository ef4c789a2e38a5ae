"""Pick the frames of a video that matter for a question, print where they lie, save a contact sheet.

    python examples/select_frames.py --video lecture.mp4 --question "What does the speaker write on the board?" -k 16
    python examples/select_frames.py --video clip.mp4 --question "..." --model ./my-agent \\
        --method bin-max --grid sheet.png
"""

from __future__ import annotations

import argparse

from tspo_sampler import TemporalSampler
from tspo_sampler.visualize import contact_sheet, format_time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", required=True, help="video file")
    ap.add_argument("--question", required=True)
    ap.add_argument("-k", type=int, default=16, help="frames to pick")
    ap.add_argument("--model", default="hzf666/TSPO-0.4B", help="Hub id or checkpoint directory")
    ap.add_argument("--method", default="topk")
    ap.add_argument("--fps", type=float, default=1.0, help="candidates per second")
    ap.add_argument("--grid", default=None, help="write a contact sheet with the score curve here")
    args = ap.parse_args()

    sampler = TemporalSampler.from_pretrained(args.model)
    sel = sampler.select_frames(args.video, args.question, args.k, method=args.method, fps=args.fps)
    print(f"{len(sel)} of {len(sel.candidate_indices)} candidates, video of {sel.duration:.1f} s")
    for idx, ts in zip(sel.indices, sel.timestamps, strict=True):
        print(f"  frame {idx:>7} at {format_time(ts)}")
    if args.grid:
        contact_sheet(sel, args.grid)
        print(f"contact sheet: {args.grid}")


if __name__ == "__main__":
    main()
