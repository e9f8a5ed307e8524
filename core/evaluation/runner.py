"""``artdb evaluate``'s engine: splits, experiments, systems on identical splits, results.

For each seed:

1. split the artists into *test* (clusterable: >= 2 units) and a *training pool* — disjoint;
2. form the group sets from the test artists, per unit (album, track): ``random`` groups of 2-4
   artists (``group_draws`` independent partitions, each scored by 5-fold CV over its own groups),
   ``same-genre`` groups (all artists of a group share a genre) and ``same-source`` groups
   (artists who share one source — game, label, production — each restricted to that source's
   tracks; threshold fitted on the random groups that share no artist with the scored group);
3. for each experiment setting — ``balanced`` (n training artists with the same number of tracks
   each, nested subsets) and ``unbalanced`` (the whole pool, natural imbalance) — fit every
   trained system on that training set (the backbone systems, ``musicnn-torch`` included, fit
   their standardisation there too); systems that learn nothing are fitted once per seed;
   systems that fit the same way (``artdb-default`` and ``backbone-head``) are fitted once;
4. embed the test tracks once per fitted system and score every group set with it (once per
   split for systems that learn nothing, once per setting for systems that fit alike).

Every system of a seed sees the same test artists, groups and folds (``split_id`` in each row).
Mode "score a model": ``EvalConfig(train_pool=False)`` makes every artist a test artist (the
catalog must be one the model never saw) and skips training. :meth:`EvalConfig.preset` is the
configuration ``artdb evaluate`` runs (its ``--quick`` budget, seed range and systems).

Progress (:mod:`artdb.core.progress`): ``progress("evaluate", seeds_done, n_seeds, event=...)``
with ``event`` ``"split"`` (a seed's test artists), ``"train"`` (a system about to be trained) and
``"scored"`` (a system's ARI on every group set).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import artdb.core.evaluation.protocol as P
from artdb.core.analysis.fusion import check_evidence
from artdb.core.analysis.metadata import AlbumMeta
from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC
from artdb.core.errors import ConfigError
from artdb.core.evaluation.dataset import EvalDataset
from artdb.core.evaluation.systems import (
    DEFAULT_SYSTEMS,
    MODEL_SYSTEMS,
    Fitted,
    SystemSpec,
    file_vectors,
    fit_system,
    needs_backbone,
    resolve,
)
from artdb.core.features.backbone import BackboneConfig
from artdb.core.progress import Progress, report

PAPER_SIZES = (25, 50, 100, 200, 400, 600)
EXPERIMENTS = ("balanced", "unbalanced")
GROUP_SETS = ("random", "same-genre", "same-source")
UNIT_CHOICES = {"album": ("album",), "track": ("track",), "both": ("album", "track")}
PRESET_SEEDS = 3  # seeds of a full run (from the first seed given)
QUICK = {"steps": 60, "group_draws": 2, "embed_excerpts": 2}  # a few-minute run, one seed


@dataclass(frozen=True)
class EvalConfig:
    systems: tuple[str, ...] = DEFAULT_SYSTEMS
    embeddings: tuple[tuple[str, str], ...] = ()  # (name, file) external systems
    models: tuple[str, ...] = ()  # registered artdb models, scored as they are
    units: tuple[str, ...] = ("album", "track")
    experiments: tuple[str, ...] = EXPERIMENTS
    sizes: tuple[int, ...] | None = None  # balanced sizes; None: the paper's that fit, else a ladder
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 300  # training steps per trained system
    test_fraction: float = 0.4
    n_test: int | None = None
    group_sizes: tuple[int, int] = (2, 4)
    folds: int = 5
    group_draws: int = 3
    min_groups: int = 2  # a unit / group set with fewer groups is reported as not applicable
    tracks_per_artist: int | None = None  # balanced: None = the pool's 25th percentile (>= 2)
    embed_excerpts: int | None = None  # excerpts per test track for CNN systems (None: all)
    linkage: str = DEFAULT_LINKAGE
    metric: str = DEFAULT_METRIC
    train: dict = field(default_factory=dict)  # TrainConfig overrides for trained systems
    head: dict = field(default_factory=dict)  # HeadConfig overrides for backbone systems (budget)
    train_pool: bool = True  # False: score given systems only, every artist is a test artist
    backbone_patches: int | None = None  # backbone patches per track (None: BackboneConfig's default)
    # "both"/"metadata": beside each system's row on random and same-genre groups, a
    # "<system>+<evidence>" row: audio and metadata fused, on the same groups and folds
    evidence: str = "audio"

    def __post_init__(self):
        for u in self.units:
            if u not in P.UNITS:
                raise ConfigError(f"unit must be in {P.UNITS}, got {u!r}")
        for e in self.experiments:
            if e not in EXPERIMENTS:
                raise ConfigError(f"experiment must be in {EXPERIMENTS}, got {e!r}")
        if not self.seeds:
            raise ConfigError("at least one seed")
        if self.folds < 2:
            raise ConfigError("folds must be >= 2")
        check_evidence(self.evidence)
        if self.backbone_patches is not None and self.backbone_patches < 1:
            raise ConfigError(f"backbone_patches must be >= 1, got {self.backbone_patches}")

    @property
    def needs_backbone(self) -> bool:
        """Whether a requested system reads backbone features."""
        return needs_backbone(self.systems)

    def backbone_config(self) -> BackboneConfig | None:
        """The backbone features the requested systems read (``None`` when none does):
        :class:`BackboneConfig` defaults with ``backbone_patches`` patches per track."""
        if not self.needs_backbone:
            return None
        return BackboneConfig(**({"patches_per_track": self.backbone_patches}
                                 if self.backbone_patches is not None else {}))

    @classmethod
    def preset(cls, *, quick: bool = False, seed: int = 0, n_seeds: int | None = None,
               systems: tuple[str, ...] | None = None, models: tuple[str, ...] = (), unit: str = "both",
               steps: int | None = None, group_draws: int | None = None, **options) -> EvalConfig:
        """The configuration ``artdb evaluate`` runs.

        Seeds ``seed .. seed + n_seeds - 1`` (default: 3 seeds; ``quick``: one, with 60 training
        steps, 2 group draws and 2 excerpts per test track); ``steps`` and ``group_draws`` override
        the budget. ``systems`` default to every built-in one, or, when registered ``models`` are
        scored (on a catalog they never saw: no training pool), to the baselines and controls.
        ``unit``: ``album``, ``track`` or ``both``. Other ``options`` are EvalConfig fields.
        """
        if unit not in UNIT_CHOICES:
            raise ConfigError(f"unit must be one of {tuple(UNIT_CHOICES)}, got {unit!r}")
        kw: dict[str, Any] = dict(QUICK, seeds=(seed,)) if quick else {
            "seeds": tuple(range(seed, seed + PRESET_SEEDS))}
        if n_seeds is not None:
            kw["seeds"] = tuple(range(seed, seed + n_seeds))
        if steps is not None:
            kw["steps"] = steps
        if group_draws is not None:
            kw["group_draws"] = group_draws
        if systems is None:
            systems = MODEL_SYSTEMS if models else DEFAULT_SYSTEMS
        return cls(systems=tuple(systems), models=tuple(models), units=UNIT_CHOICES[unit],
                   train_pool=not models, **{**options, **kw})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.train.items()}
        d["head"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.head.items()}
        return json.loads(json.dumps(d, default=list))


# -- splits ----------------------------------------------------------------------------------------
@dataclass
class GroupSet:
    name: str  # random | same-genre | same-source
    unit: str
    draws: list  # list of (groups, fold_ids) for random/same-genre; for same-source: [(groups, None)]
    rows: np.ndarray  # test-set rows (into the test dataset) whose tracks are clustered
    units: P.Units
    reference: list | None = None  # same-source: random groups the thresholds are fitted on
    ref_units: P.Units | None = None  # ... and their units (over all test tracks)

    @property
    def n_groups(self) -> int:
        return sum(len(g) for g, _ in self.draws)


@dataclass
class Split:
    seed: int
    train_artists: np.ndarray
    test_artists: np.ndarray
    test_rows: np.ndarray  # rows of the full dataset
    group_sets: dict  # (unit, name) -> GroupSet
    split_id: str = ""

    def describe(self) -> dict:
        return {
            "seed": self.seed, "split_id": self.split_id,
            "n_train_pool_artists": int(len(self.train_artists)),
            "n_test_artists": int(len(self.test_artists)), "test_artists": self.test_artists.tolist(),
            "groups": {f"{u}/{n}": {"n_groups": gs.n_groups,
                                    "groups": [[g.tolist() for g in groups] for groups, _ in gs.draws]}
                       for (u, n), gs in self.group_sets.items()},
        }


def make_split(ds: EvalDataset, cfg: EvalConfig, seed: int) -> Split:
    rng = np.random.default_rng([seed, 17])
    if cfg.train_pool:
        train_a, test_a = P.split_test_artists(ds.artists, ds.albums, rng, cfg.test_fraction, cfg.n_test,
                                               unit="track", min_units=2)
    else:
        test_a = np.unique(ds.artists)
        train_a = test_a[:0]
    test_rows = np.flatnonzero(np.isin(ds.artists, test_a))
    t_art, t_alb = ds.artists[test_rows], ds.albums[test_rows]
    genre_of = {a: g for a, g in zip(t_art.tolist(), ds.genres[test_rows].tolist())}
    sets: dict = {}
    for unit in cfg.units:
        units = P.make_units(t_art, t_alb, unit)
        all_rows = np.arange(len(test_rows))
        draws = []
        for d in range(cfg.group_draws):
            grng = np.random.default_rng([seed, 29, d])
            groups = P.make_groups(units.artist, test_a, grng, cfg.group_sizes)
            draws.append((groups, P.fold_of_groups(len(groups), cfg.folds, grng)))
        sets[(unit, "random")] = GroupSet("random", unit, draws, all_rows, units)
        grng = np.random.default_rng([seed, 31])
        genre_groups = P.make_groups(units.artist, test_a, grng, cfg.group_sizes, strata=genre_of)
        if len({genre_of[a] for a in genre_of}) > 1:
            sets[(unit, "same-genre")] = GroupSet(
                "same-genre", unit, [(genre_groups, P.fold_of_groups(len(genre_groups), cfg.folds, grng))],
                all_rows, units)
        # every draw's random groups: a same-source group's threshold is fitted on those sharing
        # none of its artists, and one draw leaves only a handful on a small test set
        sets.update(_source_sets(ds, test_rows, test_a, unit, cfg, seed,
                                 [g for groups, _ in draws for g in groups], units))
    split = Split(seed, train_a, test_a, test_rows, sets)
    h = hashlib.sha256(json.dumps(split.describe(), sort_keys=True, default=str).encode()).hexdigest()
    split.split_id = h[:12]
    return split


def _source_sets(ds, test_rows, test_a, unit, cfg, seed, reference, ref_units) -> dict:
    """Groups of test artists sharing one source, each artist restricted to that source's tracks."""
    src = ds.sources[test_rows]
    art = ds.artists[test_rows]
    rows_all, groups_all = [], []
    rng = np.random.default_rng([seed, 37])
    for s in sorted(set(src.tolist())):
        sel = np.flatnonzero(src == s)
        if len(np.unique(art[sel])) < 2:
            continue
        u = P.make_units(art[sel], ds.albums[test_rows][sel], unit)
        groups = P.make_groups(u.artist, np.unique(u.artist), rng, cfg.group_sizes)
        for g in groups:
            rows_all.append(sel[np.isin(art[sel], g)])
            groups_all.append(g)
    if not groups_all:
        return {}
    # Each group gets its own row block; artists are tagged with the group index so that groups
    # from different sources never mix when the same artist appears in two sources.
    rows = np.concatenate(rows_all)
    tag = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows_all)])
    tagged_art = np.char.add(np.char.add(art[rows].astype(str), "@"), tag.astype(str))
    units = P.make_units(tagged_art, ds.albums[test_rows][rows], unit)
    tagged_groups = [np.array([f"{a}@{i}" for a in g]) for i, g in enumerate(groups_all)]
    keep = [i for i, g in enumerate(tagged_groups)
            if np.sum(np.isin(units.artist, g)) >= 2
            and len(np.unique(units.artist[np.isin(units.artist, g)])) >= 2]
    if not keep:
        return {}
    return {(unit, "same-source"): GroupSet(
        "same-source", unit, [([tagged_groups[i] for i in keep], None)], rows, units,
        reference=[np.array([str(a) for a in g]) for g in reference], ref_units=ref_units)}


# -- balanced training sets ------------------------------------------------------------------------
def balanced_sizes(n_eligible: int, cfg: EvalConfig, min_artists: int) -> list[int]:
    if cfg.sizes is not None:
        sizes = sorted({int(s) for s in cfg.sizes if min_artists <= s <= n_eligible})
        return sizes
    sizes = [s for s in PAPER_SIZES if s <= n_eligible]
    if len(sizes) < 2:  # a small catalog: a ladder over what it has
        ladder = {max(min_artists, int(round(n_eligible * f))) for f in (0.25, 0.5, 1.0)}
        sizes = sorted(s for s in ladder | set(sizes) if min_artists <= s <= n_eligible)
    return sizes


def balanced_rows(ds: EvalDataset, pool: np.ndarray, size: int, per_artist: int, seed: int) -> np.ndarray:
    """Rows of ``size`` pool artists with ``per_artist`` tracks each, spread over their albums.

    Nested: the artists of a smaller size are a prefix of the same seeded order.
    """
    rng = np.random.default_rng([seed, 41])
    order = pool[rng.permutation(len(pool))][:size]
    rows = []
    for a in order:
        r = np.flatnonzero(ds.artists == a)
        albums = ds.albums[r]
        # round-robin over albums (in a seeded order), tracks in a seeded order inside each
        by_album = [list(rng.permutation(r[albums == al])) for al in rng.permutation(np.unique(albums))]
        picked = []
        while len(picked) < per_artist and any(by_album):
            for lst in by_album:
                if lst and len(picked) < per_artist:
                    picked.append(lst.pop())
        rows.extend(picked)
    return np.sort(np.asarray(rows, dtype=np.int64))


# -- scoring ---------------------------------------------------------------------------------------
def score_vectors(track_vecs: np.ndarray, gs: GroupSet, cfg: EvalConfig) -> P.GroupScores:
    """Scores of one system's test-track vectors on one group set."""
    vecs = P.unit_vectors(track_vecs[gs.rows], gs.units)
    out = P.GroupScores()
    if gs.name != "same-source":
        for groups, folds in gs.draws:
            if groups:
                out.extend(P.cross_validated_scores(groups, vecs, gs.units.artist, fold_ids=folds,
                                                    linkage=cfg.linkage, metric=cfg.metric))
        return out
    # same-source groups: each one's threshold is fitted on the random groups (of every draw) that
    # share none of its artists (never on itself)
    ref_vecs = P.unit_vectors(track_vecs, gs.ref_units)
    for g in gs.draws[0][0]:
        plain = {a.rsplit("@", 1)[0] for a in g.tolist()}
        fit_on = [r for r in gs.reference if not (set(r.tolist()) & plain)]
        if not fit_on:
            continue
        t = P.fitted_threshold(fit_on, ref_vecs, gs.ref_units.artist, cfg.linkage, cfg.metric)
        out.extend(P.score_groups([g], vecs, gs.units.artist, t, cfg.linkage, cfg.metric))
    return out


def fused_applies(ds: EvalDataset, gs: GroupSet, cfg: EvalConfig) -> bool:
    """Whether fused scores are made for this group set: evidence asked for, random or same-genre
    groups (same-source groups share their label by construction), metadata read. A track unit
    carries its album's metadata."""
    return cfg.evidence != "audio" and gs.name != "same-source" and bool(ds.album_meta)


def score_fused(track_vecs: np.ndarray, gs: GroupSet, cfg: EvalConfig, album_meta: dict
                ) -> P.GroupScores:
    """:func:`score_vectors` with the system's audio and the albums' metadata fused
    (:func:`~artdb.core.evaluation.protocol.cross_validated_fused_scores`): same groups, same folds."""
    vecs = P.unit_vectors(track_vecs[gs.rows], gs.units)
    metas = [album_meta.get(str(a)) or AlbumMeta(-1) for a in gs.units.album]
    out = P.GroupScores()
    for groups, folds in gs.draws:
        if groups:
            out.extend(P.cross_validated_fused_scores(groups, vecs, gs.units.artist, metas,
                                                      cfg.evidence, fold_ids=folds,
                                                      linkage=cfg.linkage, metric=cfg.metric))
    return out


def _aggregate(rows: list[dict]) -> list[dict]:
    """Mean over seeds (and spread) per (experiment, setting, unit, group set, system)."""
    keyed: dict = {}
    for r in rows:
        if r.get("ari") is None:
            continue
        k = (r["experiment"], r["n_train_artists"], r["unit"], r["groups"], r["system"])
        keyed.setdefault(k, []).append(r)
    out = []
    for (exp, n, unit, gname, system), rs in keyed.items():
        aris = np.array([r["ari"] for r in rs])
        per_group = np.concatenate([r["per_group_ari"] for r in rs])
        out.append({
            "experiment": exp, "n_train_artists": n, "unit": unit, "groups": gname, "system": system,
            "label": rs[0]["label"], "n_seeds": len(rs),
            "ari": float(aris.mean()), "ari_seed_std": float(aris.std(ddof=1)) if len(aris) > 1 else 0.0,
            "ari_group_std": float(per_group.std(ddof=1)) if len(per_group) > 1 else 0.0,
            "ari_sem": float(per_group.std(ddof=1) / math.sqrt(len(per_group)))
            if len(per_group) > 1 else 0.0,
            "ami": float(np.mean([r["ami"] for r in rs])),
            "n_groups": int(sum(r["n_groups"] for r in rs)),
        })
    return out


def run_evaluation(ds: EvalDataset, cfg: EvalConfig, progress: Progress | None = None,
                   fitted_models: dict | None = None) -> dict:
    """Run the protocol on ``ds``; returns the full report (JSON-ready dict).

    ``fitted_models``: ``{name: embed(features) -> vectors}`` for ``model:NAME`` systems, or
    ``{name: Fitted}`` (whose ``input`` names the dataset field it embeds).
    """
    specs = resolve(cfg.systems, dict(cfg.embeddings), list(cfg.models))
    if not cfg.train_pool and any(s.trained for s in specs):
        raise ConfigError("scoring a model on a separate catalog trains nothing: drop the trained systems")
    _check_backbone(ds, cfg, specs)
    n_mels = int(ds.features.shape[2])
    rows: list[dict] = []
    splits = []
    started = time.perf_counter()
    # external vectors are read once for every track
    external = {f"file:{name}": file_vectors(path, ds) for name, path in cfg.embeddings}
    n_seeds = len(cfg.seeds)
    for done, seed in enumerate(cfg.seeds):
        split = make_split(ds, cfg, seed)
        splits.append(split)
        test = ds.subset(split.test_rows)
        report(progress, "evaluate", done, n_seeds, event="split",
               **{k: v for k, v in split.describe().items() if k != "groups"})
        settings = _settings(ds, split, cfg, specs)
        # systems that learn nothing: vectors, info and scores (the same in every setting of a split)
        fixed: dict[str, tuple[np.ndarray, dict, dict]] = {}
        for spec in specs:
            if spec.trained:
                continue
            t0 = time.perf_counter()
            vecs, info = _fixed_vectors(spec, ds, test, split, cfg, seed, n_mels, external, fitted_models)
            info["embed_s"] = round(time.perf_counter() - t0, 2)
            fixed[spec.name] = (vecs, info, {})
        for exp, n_art, train_rows in settings:
            # SystemSpec.fit_key -> (vectors, info, scores): one fit, one scoring for equal systems
            same_fit: dict[str, tuple[np.ndarray, dict, dict]] = {}
            for spec in specs:
                scores: dict = {}
                if spec.trained and spec.fit_key in same_fit:
                    vecs, info, scores = same_fit[spec.fit_key]
                elif spec.trained:
                    report(progress, "evaluate", done, n_seeds, event="train", seed=seed, experiment=exp,
                           n_train_artists=n_art, system=spec.name)
                    fitted = fit_system(spec, ds.subset(train_rows), seed=seed, steps=cfg.steps,
                                        base_train=cfg.train, frontend=ds.frontend, n_mels=n_mels,
                                        embed_excerpts=cfg.embed_excerpts, base_head=cfg.head,
                                        served_backbone=ds.backbone_features)
                    t0 = time.perf_counter()
                    vecs = fitted.embed_dataset(test)
                    info = {**fitted.info, "embed_s": round(time.perf_counter() - t0, 2)}
                    same_fit[spec.fit_key] = (vecs, info, scores)
                else:
                    vecs, info, scores = fixed[spec.name]
                for (unit, gname), gs in split.group_sets.items():
                    if (unit, gname) not in scores:
                        scores[(unit, gname)] = score_vectors(vecs, gs, cfg)
                    sc = scores[(unit, gname)]
                    s = sc.summary()
                    row = {"experiment": exp, "n_train_artists": n_art, "seed": seed,
                           "split_id": split.split_id,
                           "unit": unit, "groups": gname, "system": spec.name, "label": spec.label,
                           "n_train_tracks": int(len(train_rows)), **s, "per_group_ari": sc.ari,
                           "info": info}
                    if s["n_groups"] < cfg.min_groups:
                        row["ari"] = None
                        row["note"] = f"only {s['n_groups']} group(s): not scored"
                    rows.append(row)
                    if fused_applies(ds, gs, cfg):
                        if (unit, gname, "fused") not in scores:
                            scores[(unit, gname, "fused")] = score_fused(vecs, gs, cfg, ds.album_meta)
                        fs = scores[(unit, gname, "fused")]
                        rows.append({**row, "system": f"{spec.name}+{cfg.evidence}",
                                     "label": f"{spec.label} + metadata ({cfg.evidence})",
                                     **fs.summary(), "per_group_ari": fs.ari})
                report(progress, "evaluate", done, n_seeds, event="scored", seed=seed, experiment=exp,
                       n_train_artists=n_art, system=spec.name,
                       ari={f"{r['unit']}/{r['groups']}": r["ari"] for r in rows[-2 * len(split.group_sets):]
                            if r["system"] == spec.name})
    return {
        "format": "artdb-evaluation", "version": 1,
        "paper": "Royo-Letelier et al., Disambiguating music artists at scale with audio metric "
                 "learning, ISMIR 2018 (arXiv:1810.01807)",
        "config": cfg.to_dict(), "dataset": ds.summary(),
        # the backbone features the backbone systems (and backbone models) read
        "backbone": ds.backbone if ds.backbone_features is not None else None,
        # each system followed by its fused twin (same groups, same folds) when evidence is asked
        "systems": {k: v for s in specs for k, v in
                    [(s.name, s.label)] + ([(f"{s.name}+{cfg.evidence}",
                                             f"{s.label} + metadata ({cfg.evidence})")]
                                           if cfg.evidence != "audio" else [])},
        "splits": [s.describe() for s in splits],
        "results": rows, "summary": _aggregate(rows),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _settings(ds, split: Split, cfg: EvalConfig, specs) -> list[tuple[str, Any, np.ndarray]]:
    """``(experiment, n_train_artists, train rows)`` for each training set of this split."""
    pool_rows = np.flatnonzero(np.isin(ds.artists, split.train_artists))
    if not cfg.train_pool:
        return [("model", 0, pool_rows)]
    out = []
    if "balanced" in cfg.experiments and any(s.trained for s in specs):
        counts = dict(zip(*np.unique(ds.artists[pool_rows], return_counts=True)))
        per = cfg.tracks_per_artist or max(2, int(np.percentile(list(counts.values()), 25))) if counts else 2
        eligible = np.array(sorted(a for a, c in counts.items() if c >= per))
        min_art = 2 * 2 + 1  # enough to train (P >= 2) and hold some out
        for size in balanced_sizes(len(eligible), cfg, min_art):
            out.append(("balanced", size, balanced_rows(ds, eligible, size, per, split.seed)))
    if "unbalanced" in cfg.experiments or not any(s.trained for s in specs):
        out.append(("unbalanced", int(len(split.train_artists)), pool_rows))
    return out


def _check_backbone(ds: EvalDataset, cfg: EvalConfig, specs) -> None:
    """Backbone systems need the dataset's backbone features, of the configured patch count."""
    users = [s.name for s in specs if s.needs_backbone]
    if not users:
        return
    if ds.backbone_features is None:
        raise ConfigError(f"system(s) {', '.join(users)} read backbone features, which this dataset lacks "
                          "(open it with a BackboneConfig: EvalConfig.backbone_config())")
    have = ds.backbone_config().patches_per_track
    if cfg.backbone_patches is not None and cfg.backbone_patches != have:
        raise ConfigError(f"backbone_patches={cfg.backbone_patches}, but the dataset's backbone features "
                          f"have {have} patches per track")


def _fixed_vectors(spec: SystemSpec, ds, test, split, cfg, seed, n_mels, external, fitted_models):
    if spec.kind in ("mfcc", "stats", "untrained"):
        f = fit_system(spec, None, seed=seed, steps=0, base_train=cfg.train, frontend=ds.frontend,
                       n_mels=n_mels, embed_excerpts=cfg.embed_excerpts, unlabelled=ds.features)
        return f.embed(test.features), dict(f.info)
    if spec.kind == "random":
        return P.random_embedding(len(test), 64, seed=seed), {"dim": 64}
    if spec.kind == "production":
        return P.production_embedding(test.albums, test.sources), {}
    if spec.kind == "file":
        return external[spec.name][split.test_rows], {}
    if spec.kind == "model":
        name = spec.name.split(":", 1)[1]
        if not fitted_models or name not in fitted_models:
            raise ConfigError(f"no loaded model {name!r}")
        model = fitted_models[name]
        if isinstance(model, Fitted):  # e.g. a backbone model, which reads backbone features
            return model.embed_dataset(test), dict(model.info)
        return model(test.features), {}
    raise ConfigError(f"system {spec.name!r} needs training")
