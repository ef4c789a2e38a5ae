"""search="coarse-to-fine": exact scores on refined spans, early stopping, the budget, and real files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import media
from tspo_sampler import TemporalSampler
from tspo_sampler.scoring._agent import TemporalAgent, positional_encoding, window_halo
from tspo_sampler.scoring._coarse_grid import coarse_grid, scene_anchors
from tspo_sampler.scoring._search import check_search, coarse_to_fine
from tspo_sampler.scoring._search_video import _pass_rows
from tspo_sampler.scoring._span import SpanScorer

Q = "when does the bar reach the right edge?"


def scene_features(n: int, dim: int, *, seed: int, noise: float = 0.05, drift: float = 0.3) -> torch.Tensor:
    """Features of a video cut into scenes of 20-70 candidates: each scene a direction plus a slow drift."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    feats = torch.empty(n, dim)
    start = 0
    while start < n:
        stop = min(n, start + int(rng.integers(20, 71)))
        t = torch.linspace(0, 1, stop - start)[:, None]
        base, slope = torch.randn(dim, generator=gen), torch.randn(dim, generator=gen)
        feats[start:stop] = base + drift * t * slope + noise * torch.randn(stop - start, dim, generator=gen)
        start = stop
    return feats


def scene_starts(n: int, seed: int) -> np.ndarray:
    """The first candidate of each scene of ``scene_features(n, ..., seed=seed)``."""
    rng, starts, start = np.random.default_rng(seed), [], 0
    while start < n:
        starts.append(start)
        start += int(rng.integers(20, 71))
    return np.array(starts)


def exhaustive(agent: TemporalAgent, feats: torch.Tensor, text: torch.Tensor, w: int = 12) -> torch.Tensor:
    with torch.inference_mode():
        return agent(feats, text, F.cosine_similarity(text, feats, dim=-1), window_size=w)


def run(agent, feats, text, k, **kw):
    calls = []

    def features(positions: np.ndarray) -> torch.Tensor:
        calls.append(positions.copy())
        return feats[torch.from_numpy(positions)]

    result = coarse_to_fine(agent, text, len(feats), features, k, window_size=kw.pop("w", 12), tau=0.025, **kw)
    return result, calls


@pytest.mark.parametrize(("dim", "n", "w"), [(64, 700, 12), (256, 600, 12), (64, 301, 5), (64, 90, 1)])
def test_span_scores_are_bit_identical_to_the_full_pass(dim, n, w):
    torch.manual_seed(dim + n + w)
    agent = TemporalAgent(dim, 8).eval()
    feats, text = torch.randn(n, dim), torch.randn(1, dim)
    full = exhaustive(agent, feats, text, w)
    pe = positional_encoding(n, dim)
    left, right = window_halo(w)
    rng = np.random.default_rng(0)
    spans = [(0, 1), (n - 1, n), (0, n), (3, 4)]
    spans += [tuple(sorted(rng.choice(n + 1, 2, replace=False))) for _ in range(12)]
    with torch.inference_mode():
        for start, stop in spans:
            lo, hi = max(0, start - left), min(n, stop + right)
            got = agent.score_span(
                feats[lo:hi], text, None, offset=lo, total=n, start=start, stop=stop, window_size=w,
                position_encoding=pe[lo:hi] if start % 2 else None,
            )
            assert torch.equal(got, full[start:stop]), (start, stop)


def test_span_without_its_halo_is_refused():
    agent = TemporalAgent(64, 8).eval()
    feats, text = torch.randn(100, 64), torch.randn(1, 64)
    with pytest.raises(ValueError, match="needs features of frames 44..59, got 45..59"):
        agent.score_span(feats[45:60], text, offset=45, total=100, start=50, stop=55, window_size=12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_refined_scores_equal_exhaustive_scores(seed):
    torch.manual_seed(seed)
    agent = TemporalAgent(64, 8).eval()
    feats, text = scene_features(1800, 64, seed=seed), torch.randn(1, 64)
    full = exhaustive(agent, feats, text)
    result, calls = run(agent, feats, text, 8)
    scored = torch.from_numpy(np.isfinite(result.scores))
    assert scored.sum() >= 8
    assert torch.equal(torch.from_numpy(result.scores)[scored], full[scored])
    assert result.encoded_frames <= 0.2 * 1800
    # every position was asked for once, and never the whole stream
    asked = np.concatenate(calls)
    assert len(asked) == len(np.unique(asked)) == result.encoded_frames
    # the picks are the best exact scores, and they lie in the exhaustive top 2%
    assert result.positions == sorted(np.argsort(-np.nan_to_num(result.scores, nan=-np.inf), kind="stable")[:8])
    threshold = torch.quantile(full, 0.98)
    assert sum(bool(full[p] >= threshold) for p in result.positions) >= 7


def test_search_stops_when_the_bounds_prove_the_top_k():
    """Scenes of constant features: the coarse estimates are nearly exact, the learnt margin is small, and
    the search stops on its bounds well inside the budget, with the exhaustive top-k."""
    torch.manual_seed(3)
    agent = TemporalAgent(64, 8).eval()
    feats, text = scene_features(1200, 64, seed=3, noise=0.0, drift=0.0), torch.randn(1, 64)
    full = exhaustive(agent, feats, text)
    result, _ = run(agent, feats, text, 4, max_encoded=0.9)
    assert result.stopped == "bounds"
    assert result.encoded_frames < 0.5 * 1200
    assert result.positions == sorted(torch.topk(full, 4).indices.tolist())


def test_budget_exhaustion_stops_the_search():
    torch.manual_seed(4)
    agent = TemporalAgent(64, 8).eval()
    feats, text = scene_features(4000, 64, seed=4, noise=0.5), torch.randn(1, 64)
    result, _ = run(agent, feats, text, 8, max_encoded=0.12, coarse_step=16)
    assert result.stopped == "budget"
    assert 0.12 * 4000 - 15 < result.encoded_frames <= 0.12 * 4000  # filled to within one unit plus halo
    assert len(result.positions) == 8 and np.isfinite(result.scores[result.positions]).all()


@pytest.mark.parametrize("n", [1, 5, 30, 50])  # 50: the coarse grid (7) plus k units and a halo (43) is all
def test_short_videos_score_every_candidate(n):
    torch.manual_seed(n)
    agent = TemporalAgent(64, 8).eval()
    feats, text = torch.randn(n, 64), torch.randn(1, 64)
    result, calls = run(agent, feats, text, 8)
    full = exhaustive(agent, feats, text)
    assert result.stopped == "exhaustive" and result.encoded_frames == n and len(calls) == 1
    assert torch.equal(torch.from_numpy(result.scores), full)
    assert result.positions == sorted(torch.topk(full, min(8, n)).indices.tolist())


def test_raw_clip_scores_need_no_halo():
    feats, text = scene_features(900, 32, seed=5), torch.randn(1, 32)
    result, _ = run(None, feats, text, 4)
    clip = F.cosine_similarity(text, feats, dim=-1) / 0.025
    scored = torch.from_numpy(np.isfinite(result.scores))
    assert torch.equal(torch.from_numpy(result.scores)[scored], clip[scored])
    assert SpanScorer(None, text, 900, window_size=12, tau=0.025).halo == (0, 0)


def test_search_modes_and_methods_are_checked():
    assert check_search("exhaustive", "bolt") == "exhaustive"
    assert check_search("coarse-to-fine", "topk") == "coarse-to-fine"
    for method in ("bin-max", "aks", "bolt", "clip", "uniform"):
        with pytest.raises(ValueError, match=f"method='{method}'.*search='coarse-to-fine'"):
            check_search("coarse-to-fine", method)
    with pytest.raises(ValueError, match="search must be one of exhaustive, coarse-to-fine"):
        check_search("greedy")
    feats, text = torch.randn(100, 64), torch.randn(1, 64)
    with pytest.raises(ValueError, match="max_encoded"):
        run(None, feats, text, 4, max_encoded=0)
    with pytest.raises(ValueError, match="coarse_step"):
        run(None, feats, text, 4, coarse_step=0)


# ---------------------------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("search-videos")
    return {
        "mp4": media.make_video(d / "long.mp4", duration=100.0, fps=4.0, size=(96, 64)),
        "vfr": media.make_video(d / "vfr.mkv", duration=150.0, fps=2.0, vfr=True, size=(96, 64)),
    }


@pytest.mark.parametrize("name", ["mp4", "vfr"])
def test_select_frames_coarse_to_fine_on_files(uncached_sampler, videos, name):
    ex = uncached_sampler.select_frames(videos[name], Q, 4, return_frames=False)
    cf = uncached_sampler.select_frames(videos[name], Q, 4, search="coarse-to-fine")
    assert ex.encoded_frames == len(ex.candidate_indices)
    assert cf.candidate_indices == ex.candidate_indices and cf.candidate_timestamps == ex.candidate_timestamps
    assert 4 * 4 <= cf.encoded_frames < len(cf.candidate_indices)  # at least k refined units
    scored = np.isfinite(cf.scores)
    assert np.isnan(cf.scores).sum() > 0 and scored.sum() >= 4
    assert np.array_equal(cf.scores[scored], ex.scores[scored])  # bit-identical where scored
    for frame, t in zip(cf.frames, cf.timestamps, strict=True):  # presentation times, VFR included
        assert abs(media.read_stamp(frame) - t) < 0.011
    assert cf.method == "topk" and cf.video == str(videos[name])


def test_select_frames_coarse_to_fine_in_memory_and_from_features(uncached_sampler):
    frames = np.stack([media.draw_frame(t, (64, 48)) for t in np.arange(0, 150, 1.0)])
    ex = uncached_sampler.select_frames(frames, Q, 3)
    cf = uncached_sampler.select_frames(frames, Q, 3, search="coarse-to-fine")
    scored = np.isfinite(cf.scores)
    assert cf.encoded_frames < 150 and np.array_equal(cf.scores[scored], ex.scores[scored])
    assert cf.frames.shape == (3, 48, 64, 3) and cf.duration == 150.0
    feats = uncached_sampler.encode_video(frames)
    replay = uncached_sampler.select_from_features(feats, Q, 3, search="coarse-to-fine")
    assert replay.indices == cf.indices and replay.encoded_frames == cf.encoded_frames
    with pytest.raises(ValueError, match="method='bolt'"):
        uncached_sampler.select_frames(frames, Q, 3, method="bolt", search="coarse-to-fine")
    with pytest.raises(ValueError, match="search must be"):
        uncached_sampler.select_from_features(feats, Q, 3, search="fast")


def test_cached_exhaustive_run_is_replayed(checkpoint_dir, videos, tmp_path):
    sampler = TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache_dir=tmp_path)
    ex = sampler.select_frames(videos["mp4"], Q, 4, return_frames=False)
    cf = sampler.select_frames(videos["mp4"], Q, 4, return_frames=False, search="coarse-to-fine")
    scored = np.isfinite(cf.scores)
    assert cf.encoded_frames < len(ex.candidate_indices)
    assert np.array_equal(cf.scores[scored], ex.scores[scored])


def test_a_cached_file_replays_the_live_search(checkpoint_dir, tmp_path):
    """The exhaustive pass records the file's keyframes with its features, so a coarse-to-fine call served from
    the cache builds the live search's keyframe grid and picks and reads what an uncached call picks and encodes;
    so does select_from_features on those features, and so does a cache entry saved before features recorded
    keyframes (they are read from the file)."""
    from dataclasses import replace

    from tspo_sampler.features._source import as_video
    from tspo_sampler.scoring._settings import SelectionSettings

    video = media.make_long_video(tmp_path / "long.mp4", 5, size=(96, 64), fps=1.0, gop=10)
    uncached = TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache=False)
    live = uncached.select_frames(video, Q, 4, search="coarse-to-fine", return_frames=False)
    sampler = TemporalSampler.from_pretrained(checkpoint_dir, device="cpu", feature_cache_dir=tmp_path / "cache")
    sampler.select_frames(video, Q, 4, return_frames=False)  # the exhaustive pass fills the cache
    feats = sampler.encode_video(video)
    assert feats.metadata["keyframes"][:2] == [0, 10]

    def same(sel):
        assert sel.positions == live.positions and sel.encoded_frames == live.encoded_frames
        assert np.array_equal(np.isfinite(sel.scores), np.isfinite(live.scores))
        assert np.array_equal(sel.scores[np.isfinite(sel.scores)], live.scores[np.isfinite(live.scores)])

    same(sampler.select_frames(video, Q, 4, search="coarse-to-fine", return_frames=False))
    same(sampler.select_from_features(feats, Q, 4, search="coarse-to-fine"))
    older = replace(feats, metadata={k: v for k, v in feats.metadata.items() if k != "keyframes"})
    with sampler.feature_source(as_video(video), SelectionSettings()) as source:
        sampler.cache.put(source.cache_key, older)
    same(sampler.select_frames(video, Q, 4, search="coarse-to-fine", return_frames=False))
    # without the keyframes, the in-memory grid: another coarse step, so another search
    other = sampler.select_from_features(older, Q, 4, search="coarse-to-fine")
    assert other.encoded_frames != live.encoded_frames


def _select_both(sampler, video, k):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ex = sampler.select_frames(video, Q, k, return_frames=False)
        cf = sampler.select_frames(video, Q, k, search="coarse-to-fine")
    return ex, cf, [str(w.message) for w in caught]


def test_cut_file_searches_the_candidates_that_decode(uncached_sampler, videos, tmp_path):
    """A cut-off Matroska file: its candidates stop at the cut, so every one the search asks for decodes."""
    cut = media.make_truncated(videos["vfr"], tmp_path / "cut.mkv", keep=0.6)
    ex, cf, messages = _select_both(uncached_sampler, cut, 2)
    assert not any("do not decode" in m for m in messages)
    assert any("the file ends early" in m for m in messages)
    assert cf.candidate_indices == ex.candidate_indices and cf.encoded_frames < len(ex.candidate_indices)
    for frame, t in zip(cf.frames, cf.timestamps, strict=True):
        assert abs(media.read_stamp(frame) - t) < 0.011


def test_damaged_candidates_make_the_search_score_every_decodable_one(uncached_sampler, videos, tmp_path):
    """Zeroed bytes early in an mp4 (its index intact): candidates the coarse grid asks for fail to decode, so
    the search warns and scores every decodable candidate, as the exhaustive search does."""
    hole = media.make_hole(videos["mp4"], tmp_path / "hole.mp4", start=0.05, length=0.02)
    ex, cf, messages = _select_both(uncached_sampler, hole, 2)
    assert any("some candidates of this video do not decode" in m for m in messages)
    assert len(ex.candidate_indices) < 100  # the exhaustive search left the damaged frames out too
    assert cf.indices == ex.indices and cf.encoded_frames == len(ex.candidate_indices)
    for frame, t in zip(cf.frames, cf.timestamps, strict=True):
        assert abs(media.read_stamp(frame) - t) < 0.011


def test_cli_select_and_index_take_search(checkpoint_dir, videos, tmp_path, monkeypatch, capsys):
    import json

    from tspo_sampler.cli import main

    monkeypatch.setenv("TSPO_SAMPLER_CACHE", str(tmp_path / "cli-cache"))
    video = str(videos["mp4"])
    base = ["select", video, Q, "-k", "3", "--model", str(checkpoint_dir), "--no-cache"]
    assert main(base + ["--search", "coarse-to-fine", "--json"]) == 0
    picked = json.loads(capsys.readouterr().out)
    assert len(picked["indices"]) == 3 and picked["encoded_frames"] < picked["num_candidates"] == 100
    assert main(base + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["encoded_frames"] == 100
    assert main(base + ["--search", "coarse-to-fine", "--method", "bolt"]) == 2
    assert "--search coarse-to-fine works with --method topk only, got --method bolt" in capsys.readouterr().err

    dataset = tmp_path / "d.jsonl"
    rows = [{"video": video, "question": Q}, {"video": video, "question": "what colour is the band?"}]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    args = ["index", str(dataset), "--out", str(out), "-k", "2", "--model", str(checkpoint_dir), "--no-cache",
            "--no-progress", "--scores", "--search", "coarse-to-fine"]
    assert main(args) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]  # strict JSON: unscored are null
    assert len(records) == 2 and all(r["status"] == "ok" and len(r["indices"]) == 2 for r in records)
    assert None in records[0]["scores"]
    settings = json.loads((tmp_path / "out.jsonl.settings.json").read_text())
    assert settings["runs"][-1]["settings"]["search"] == "coarse-to-fine"


def test_coarse_frames_follow_cheap_positions():
    """On files the coarse frame of a block is the first candidate after a keyframe inside it, if any."""
    feats, text = scene_features(400, 32, seed=6), torch.randn(1, 32)
    cheap = np.array([3, 12, 40, 41, 95])
    result, calls = run(None, feats, text, 2, coarse_step=10, cheap=cheap)
    expected = np.arange(5, 400, 10)
    expected[[0, 1, 4, 9]] = [3, 12, 40, 95]
    assert np.array_equal(calls[0], expected)
    assert result.stopped in ("bounds", "budget", "complete")


def test_score_curve_draws_only_scored_candidates():
    from tspo_sampler._result import Selection
    from tspo_sampler.visualize import score_curve

    scores = np.full(100, np.nan)
    scores[10:30], scores[60] = np.linspace(1, 2, 20), 3.0
    sel = Selection(indices=[20, 60], timestamps=[20.0, 60.0], frames=None, scores=scores,
                    candidate_indices=list(range(100)), candidate_timestamps=[float(i) for i in range(100)],
                    method="topk", positions=[20, 60])
    img = np.asarray(score_curve(sel, 400))
    blue = (img[..., 2] > 150) & (img[..., 0] < 80)
    cols = np.flatnonzero(blue.any(axis=0))
    assert len(cols) and cols.min() > 60 + 320 * 9 / 99 and cols.max() < 60 + 320 * 31 / 99  # the 10-29 run only


# ------------------------------------------------------------------------------ keyframe grid (issue 22)


def test_keyframe_anchors_are_the_irregular_keyframes():
    """A 25 fps stream with a keyframe every 250 frames that restarts at each cut: the cut keyframes are the
    anchors, every keyframe's first candidate (1 fps) is cheap."""
    cuts = [0, 600, 1000, 1225, 2500]  # a 4 s scene (1000..1100) and a 9 s one (1000, 1225)
    keys = sorted({f for a, b in zip(cuts, cuts[1:] + [4000], strict=True) for f in range(a, b, 250)})
    candidates = np.arange(0, 4000, 25)
    anchors, cheap = scene_anchors(candidates, np.array(keys))
    assert anchors.tolist() == [c // 25 for c in cuts]
    assert cheap.tolist() == sorted({-(-f // 25) for f in keys})
    assert scene_anchors(candidates, np.arange(0, 4000, 250))[0].tolist() == [0]  # a fixed GOP: no cuts


def test_keyframe_grid_gives_every_short_scene_a_coarse_frame():
    anchors = np.array([0, 37, 40, 44, 200, 203])  # scenes of 3 and 4 candidates among long ones
    grid = coarse_grid(400, 32, anchors)
    assert set(anchors) <= set(grid.tolist())
    assert np.diff(np.concatenate([grid, [400]])).max() <= 32
    assert len(grid) < len(coarse_grid(400, 8, None))  # longer spacing inside the long scenes
    cheap = np.arange(0, 400, 10)
    snapped = coarse_grid(400, 30, np.array([0, 205]), cheap)  # fill moves onto nearby cheap positions
    assert set(np.setdiff1d(snapped, [0, 205]).tolist()) <= set(cheap.tolist())
    # the search encodes each scene's first candidate in its coarse pass, however short the scene
    feats, text = scene_features(400, 32, seed=7), torch.randn(1, 32)
    _, calls = run(None, feats, text, 2, anchors=anchors, coarse_step=32)
    assert set(anchors) <= set(calls[0].tolist())


@pytest.mark.parametrize("seed", [0, 1])
def test_search_ends_on_bounds_on_a_scene_video(seed):
    """Scenes that drift slowly, anchors at the cuts, the default budget (a tenth): the bounds prove the
    top-k before the budget runs out, and the refined scores are the exhaustive ones, bit for bit."""
    torch.manual_seed(seed)
    agent = TemporalAgent(64, 8).eval()
    feats, text = scene_features(1800, 64, seed=seed, noise=0.01), torch.randn(1, 64)
    full = exhaustive(agent, feats, text)
    result, _ = run(agent, feats, text, 8, anchors=scene_starts(1800, seed), coarse_step=24)
    assert result.stopped == "bounds"
    assert result.encoded_frames <= 0.1 * 1800
    scored = torch.from_numpy(np.isfinite(result.scores))
    assert torch.equal(torch.from_numpy(result.scores)[scored], full[scored])
    assert result.positions == sorted(torch.topk(full, 8).indices.tolist())
    assert result.policy_seconds > 0


def test_the_first_refinement_round_takes_a_few_units():
    """The first round, which has no margin yet, refines at most ``first_round_units`` units whatever ``k``;
    later rounds, steered by the margin, up to ``min(k, round_units)``."""
    from tspo_sampler.scoring._search import CoarseToFineSearch

    class Recording(CoarseToFineSearch):
        scored_after_round: list[int] = []

        def _score_known(self) -> None:
            super()._score_known()
            self.scored_after_round.append(int(np.isfinite(self.scores).sum()))

    torch.manual_seed(6)
    agent = TemporalAgent(64, 8).eval()
    feats, text = scene_features(1800, 64, seed=6, noise=0.3), torch.randn(1, 64)
    scorer = SpanScorer(agent, text, len(feats), window_size=12, tau=0.025)
    search = Recording(scorer, lambda p: feats[torch.from_numpy(p)], 16, coarse_step=40, max_encoded=0.3,
                       anchors=scene_starts(1800, 6))
    result = search.run()
    first, *later = np.diff([0, *search.scored_after_round])
    unit = CoarseToFineSearch.unit
    assert unit <= first <= CoarseToFineSearch.first_round_units * unit + 11  # a few units (and windows they complete)
    assert result.rounds >= 3 and max(later) > CoarseToFineSearch.first_round_units * unit + 11


def test_coarse_step_and_max_encoded_change_the_search():
    torch.manual_seed(5)
    agent = TemporalAgent(64, 8).eval()
    feats, text = scene_features(1800, 64, seed=5, noise=0.3), torch.randn(1, 64)
    wide, calls_wide = run(agent, feats, text, 8, coarse_step=32)
    narrow, calls_narrow = run(agent, feats, text, 8, coarse_step=8)
    assert len(calls_wide[0]) < len(calls_narrow[0])
    small, _ = run(agent, feats, text, 8, coarse_step=32, max_encoded=0.12)
    large, _ = run(agent, feats, text, 8, coarse_step=32, max_encoded=0.5)
    assert small.stopped == "budget" and small.encoded_frames <= 0.12 * 1800 < large.encoded_frames


def test_search_settings_as_keywords_and_flags(uncached_sampler, checkpoint_dir, videos, tmp_path, monkeypatch,
                                               capsys):
    """select_frames(coarse_step=, max_encoded=) and tspo select --coarse-step/--max-encoded change the search;
    a share of 1 encodes every candidate, and a bad value is one line naming the flag."""
    import json

    from tspo_sampler.cli import main

    video = str(videos["mp4"])
    default = uncached_sampler.select_frames(video, Q, 3, return_frames=False, search="coarse-to-fine")
    everything = uncached_sampler.select_frames(video, Q, 3, return_frames=False, search="coarse-to-fine",
                                                coarse_step=4, max_encoded=1.0)
    assert default.encoded_frames < everything.encoded_frames == len(everything.candidate_indices)
    monkeypatch.setenv("TSPO_SAMPLER_CACHE", str(tmp_path / "cli-cache"))
    base = ["select", video, Q, "-k", "3", "--model", str(checkpoint_dir), "--no-cache", "--search", "coarse-to-fine"]
    assert main(base + ["--coarse-step", "4", "--max-encoded", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["encoded_frames"] == everything.encoded_frames
    assert main(base + ["--max-encoded", "2"]) == 2
    assert "--max-encoded" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [0, 1])
def test_requests_fill_whole_encoder_passes(seed):
    """With ``pass_rows=8`` (the CPU encoder pads its last pass to 8 frames) every request the search makes is a
    whole number of passes while the budget allows: the coarse grid gains frames in its widest gaps, a refinement
    round the next-best units' frames. Scores stay the exhaustive ones bit for bit, the picks as good."""
    torch.manual_seed(seed)
    agent = TemporalAgent(64, 8).eval()
    feats, text = scene_features(1800, 64, seed=seed, noise=0.1), torch.randn(1, 64)
    full = exhaustive(agent, feats, text)
    plain, plain_calls = run(agent, feats, text, 8, anchors=scene_starts(1800, seed), coarse_step=24)
    filled, calls = run(agent, feats, text, 8, anchors=scene_starts(1800, seed), coarse_step=24, pass_rows=8)
    assert any(len(c) % 8 for c in plain_calls)  # without it, passes are padded
    passes = sum(-(-len(c) // 8) for c in plain_calls)
    assert sum(-(-len(c) // 8) for c in calls) <= passes - 1  # no more encoder passes (here, fewer)
    budget = int(0.1 * 1800)
    spent = np.cumsum([len(c) for c in calls])
    for size, total in zip((len(c) for c in calls), spent, strict=True):
        assert size % 8 == 0 or total > budget - 8, (size, total)
    assert spent[-1] == filled.encoded_frames <= budget
    # the coarse request grew by frames in the grid's widest gaps
    assert len(calls[0]) == len(plain_calls[0]) + (-len(plain_calls[0]) % 8)
    assert set(plain_calls[0]) <= set(calls[0])
    asked = np.concatenate(calls)
    assert len(asked) == len(np.unique(asked))
    scored = torch.from_numpy(np.isfinite(filled.scores))
    assert torch.equal(torch.from_numpy(filled.scores)[scored], full[scored])
    threshold = torch.quantile(full, 0.98)
    assert sum(bool(full[p] >= threshold) for p in filled.positions) >= 7


def test_pass_rows_is_checked():
    agent = TemporalAgent(64, 8).eval()
    feats, text = torch.randn(300, 64), torch.randn(1, 64)
    for bad in (0, -8, 2.5, True):
        with pytest.raises(ValueError, match="pass_rows must be a positive integer"):
            run(agent, feats, text, 4, pass_rows=bad)


def test_file_search_pads_no_encoder_pass(uncached_sampler, videos, monkeypatch):
    """On a file, the search's requests fill whole 8-frame passes: the encoder pads none of them (the last
    request may be cut short by the budget). A batch size that is not a multiple of 8 pads every batch: no filling."""
    encoder = uncached_sampler.encoder
    assert encoder.pass_rows == 8 and uncached_sampler.batch_size % 8 == 0
    sizes = []
    real = type(encoder).encode_images

    def counted(self, frames):
        sizes.append(len(frames))
        return real(self, frames)

    monkeypatch.setattr(type(encoder), "encode_images", counted)
    cf = uncached_sampler.select_frames(videos["mp4"], Q, 4, search="coarse-to-fine", return_frames=False)
    assert sum(sizes) == cf.encoded_frames
    assert all(size % 8 == 0 for size in sizes[:-1]), sizes
    assert _pass_rows(uncached_sampler) == 8
    monkeypatch.setattr(uncached_sampler, "batch_size", 12)  # every 12-frame batch pads its own pass: no filling
    assert _pass_rows(uncached_sampler) == 1


def test_later_rounds_take_at_most_round_units_units():
    """A large ``k`` refines in rounds of at most ``round_units`` units (8): the k-th best exact score and the
    margin catch up between rounds, and the picks stay exact."""
    from tspo_sampler.scoring._search import CoarseToFineSearch

    class Recording(CoarseToFineSearch):
        rounds_taken: list[int] = []

        def _choose(self, todo: list[int]) -> list[int]:
            chosen = super()._choose(todo)
            self.rounds_taken.append(len(chosen))
            return chosen

    torch.manual_seed(8)
    agent = TemporalAgent(64, 8).eval()
    feats, text = scene_features(3600, 64, seed=8, noise=0.3), torch.randn(1, 64)
    full = exhaustive(agent, feats, text)
    scorer = SpanScorer(agent, text, len(feats), window_size=12, tau=0.025)
    search = Recording(scorer, lambda p: feats[torch.from_numpy(p)], 32, coarse_step=40, max_encoded=0.3,
                       anchors=scene_starts(3600, 8), pass_rows=8)
    result = search.run()
    first, *later = search.rounds_taken
    assert CoarseToFineSearch.round_units == 8 and first <= 4
    assert later and max(later) == 8, search.rounds_taken
    scored = torch.from_numpy(np.isfinite(result.scores))
    assert torch.equal(torch.from_numpy(result.scores)[scored], full[scored])
    threshold = torch.quantile(full, 0.98)
    assert sum(bool(full[p] >= threshold) for p in result.positions) >= 28
