"""Make the bundled example video, src/tspo_sampler/data/example.mp4 (the project's own work, Apache-2.0).

    python tools/make_example_video.py [OUTPUT]

Frames are drawn with Pillow from the scene schedule in ``tspo_sampler._example.SCENES`` (flat colours, a large
printed word, a simple object that moves a little) and piped to the ffmpeg program as raw RGB; H.264 at CRF 30
keeps the file far below 2 MB. Needs ffmpeg on PATH.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tspo_sampler._example import FPS, SCENES, SIZE, Scene  # noqa: E402

DEFAULT_OUTPUT = ROOT / "src" / "tspo_sampler" / "data" / "example.mp4"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's bundled scalable font: no system fonts needed


def _shape(draw: ImageDraw.ImageDraw, scene: Scene, t: float, cx: float, cy: float) -> None:
    """The scene's object, centred near (cx, cy), drifting with the time ``t`` inside the scene."""
    fg = scene.foreground
    if scene.shape == "sun":
        r = 55
        x = cx + 40 * math.sin(t)
        draw.ellipse([x - r, cy - r, x + r, cy + r], fill=fg)
        for a in range(0, 360, 30):
            ang = math.radians(a) + t / 3
            c, s = math.cos(ang), math.sin(ang)
            draw.line([x + 70 * c, cy + 70 * s, x + 95 * c, cy + 95 * s], fill=fg, width=6)
        draw.rectangle([0, SIZE[1] - 60, SIZE[0], SIZE[1]], fill=(235, 210, 150))  # sand
    elif scene.shape == "trees":
        for i, x in enumerate(range(60, SIZE[0], 130)):
            sway = 8 * math.sin(t * 2 + i)
            draw.rectangle([x - 10, cy + 40, x + 10, cy + 110], fill=fg)
            draw.polygon([(x + sway, cy - 90), (x - 55, cy + 45), (x + 55, cy + 45)], fill=(60, 200, 80))
    elif scene.shape == "octagon":
        r = 95 + 5 * math.sin(t * 2)
        pts = [(cx + r * math.cos(math.radians(22.5 + 45 * i)), cy + r * math.sin(math.radians(22.5 + 45 * i)))
               for i in range(8)]
        draw.polygon(pts, fill=(180, 0, 0), outline=fg, width=8)
    elif scene.shape == "clock":
        r = 100
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fg, width=8, fill=(255, 255, 255))
        for h in range(12):
            a = math.radians(h * 30)
            draw.line([cx + 80 * math.sin(a), cy - 80 * math.cos(a), cx + 92 * math.sin(a), cy - 92 * math.cos(a)],
                      fill=fg, width=5)
        minute = math.radians(t * 72)  # the minute hand turns once every 5 s
        draw.line([cx, cy, cx + 80 * math.sin(minute), cy - 80 * math.cos(minute)], fill=fg, width=6)
        hour = math.radians(300)  # ten o'clock
        draw.line([cx, cy, cx + 50 * math.sin(hour), cy - 50 * math.cos(hour)], fill=fg, width=9)
    elif scene.shape == "fireworks":
        rng = np.random.default_rng(int(scene.start))
        for burst in range(5):
            bx, by = rng.uniform(80, SIZE[0] - 80), rng.uniform(60, cy + 40)
            colour = tuple(int(c) for c in rng.integers(120, 256, size=3))
            radius = 20 + 25 * ((t * 1.5 + burst * 0.37) % 3)
            for a in range(0, 360, 20):
                ang = math.radians(a)
                px, py = bx + radius * math.cos(ang), by + radius * math.sin(ang)
                draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=colour)
    else:
        raise ValueError(f"unknown shape {scene.shape!r}")


def draw_frame(scene: Scene, t: float) -> np.ndarray:
    """One RGB frame of ``scene`` at ``t`` seconds into the scene."""
    w, h = SIZE
    img = Image.new("RGB", SIZE, scene.background)
    draw = ImageDraw.Draw(img)
    _shape(draw, scene, t, w / 2, h / 2 - 20)
    font = _font(64)
    text_w = draw.textlength(scene.word, font=font)
    x, y = (w - text_w) / 2, h - 100
    draw.rectangle([x - 14, y - 6, x + text_w + 14, y + 74], fill=(0, 0, 0))
    draw.text((x, y), scene.word, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def make_example_video(output: Path = DEFAULT_OUTPUT) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("make_example_video: the ffmpeg program is not on PATH")
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{SIZE[0]}x{SIZE[1]}",
        "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "slow", "-crf", "30", "-pix_fmt", "yuv420p",
        "-g", str(2 * FPS), "-threads", "1", "-movflags", "+faststart", "-map_metadata", "-1",
        "-metadata", "title=tspo-sampler example video", str(output),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for scene in SCENES:
            for i in range(round((scene.end - scene.start) * FPS)):
                proc.stdin.write(draw_frame(scene, i / FPS).tobytes())
    finally:
        proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit(f"make_example_video: ffmpeg failed with exit code {proc.returncode}")
    return output


if __name__ == "__main__":
    out = make_example_video(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT)
    print(f"{out} ({out.stat().st_size / 1e6:.2f} MB)")
