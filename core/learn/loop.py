"""The training loop for artist embeddings: CL, ML (triplet) and joint ML+CL.

Entry point: :func:`train` ``(data, config, progress=None, model=None) -> TrainResult``.

The loop is short (pytorch-metric-learning's trainers read the same way): each step runs the
hooks due before it, one optimisation step (:class:`TrainStep`), then the hooks due after it;
what a run decides besides descending the gradient lives in those small collaborators:

- :class:`IndexRefresh` (``mining="index"``): every ``index_refresh_every`` steps re-embeds the
  training tracks, refreshes an exact index and gives the sampler each anchor's nearest
  other-artist neighbours (:class:`~artdb.core.learn.sampling.NeighbourBatchSampler`), within a
  time budget (``index_budget``, share of training time);
- :class:`HardMiningSwitch`: semi-hard mining becomes hard after ``hard_after`` of the steps;
- :class:`CollapseRollback`: non-finite loss or embedding spread (mean pairwise distance in the
  batch) below ``min_spread`` for ``collapse_patience`` steps (:class:`CollapseGuard`) stops the
  run and restores the last good weights (or raises :class:`TrainingCollapsedError` with
  ``on_collapse="raise"``);
- :class:`ModelSelection`: validation (:mod:`artdb.core.learn.validation`) every ``val_every``
  steps keeps the best-so-far weights and stops after ``patience`` checks without a gain.

Batches are ``P`` artists x ``m`` tracks (:class:`~artdb.core.learn.sampling.ArtistBatchSampler`),
shrunk to what a small catalog can fill (:func:`fit_to_catalog`, recorded in ``TrainResult.adapted``
and ``notes`` and an ``adapt`` event; below two artists with two tracks each training refuses);
one random excerpt of the ``k`` per track and, optionally, a random crop in time, read straight
from the feature array (no audio decoding). ML mining: semi-hard or hard in-batch mining with
album/genre side information (:class:`~artdb.core.learn.sampling.SideInfoTripletMiner`).

Library code never prints: every event (``step``, ``val``, ``refresh``, ``mining``, ``collapse``,
``done``) is kept in ``TrainResult.history`` and reported as ``progress("train", step, steps,
event=..., ...)`` (:mod:`artdb.core.progress`). Deterministic on CPU for a given seed and thread
count.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from artdb.core.errors import ArtdbError, ConfigError
from artdb.core.features.mfcc import STATS_N_MFCC, fit_standardizer
from artdb.core.learn.config import TrainConfig, TrainingData, TrainResult, check_trainable
from artdb.core.learn.losses import ArtistLoss, mean_pairwise_distance
from artdb.core.learn.networks import ArtistNet, ModelConfig, build_model, embed
from artdb.core.learn.sampling import (
    ArtistBatchSampler,
    NeighbourBatchSampler,
    SideInfoTripletMiner,
    fit_batch_shape,
    other_artist_neighbours,
)
from artdb.core.learn.validation import ValidationPlan, Validator, plan_validation
from artdb.core.progress import Progress, report
from artdb.core.vectors.indexer_errors import indexer_errors
from artdb.indexer import TorchExactIndex, VectorIndex


class TrainingCollapsedError(ArtdbError):
    """The embedding collapsed (or the loss diverged) and ``on_collapse='raise'`` was asked."""


def train(
    data: TrainingData,
    config: TrainConfig,
    progress: Progress | None = None,
    model: ArtistNet | None = None,
) -> TrainResult:
    """Train an artist embedding; see the module docstring. ``model`` continues from given weights.

    The caller's torch RNG state and thread count are restored afterwards (the run seeds its own).
    """
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA device is available")
    threads = torch.get_num_threads()
    fork_devices = [device] if device.type == "cuda" else []
    try:
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        with torch.random.fork_rng(devices=fork_devices, device_type=device.type):
            torch.manual_seed(config.seed)
            return _train(data, config, progress, model, device)
    finally:
        torch.set_num_threads(threads)


def _train(data: TrainingData, cfg: TrainConfig, progress, model, device) -> TrainResult:
    rng = np.random.default_rng(cfg.seed)
    check_trainable(data.artists)  # the one refusal: too few artists to form a triplet
    plan = plan_validation(data, cfg, rng)
    train_ids, val_ids, val_unit = plan.train_ids, plan.val_ids, plan.unit
    rows = TrainRows(data, train_ids)
    cfg, adapted, notes = fit_to_catalog(cfg, rows, plan)
    validator = Validator(data, val_ids, cfg, np.random.default_rng(cfg.seed + 1), val_unit)
    batch = cfg.artists_per_batch * cfg.per_artist
    steps = cfg.steps if cfg.epochs is None else max(1, math.ceil(cfg.epochs * len(rows.rows) / batch))
    model, mcfg = _prepare_model(model, data, cfg, len(train_ids), device)
    step_fn = TrainStep(data, rows, cfg, model, steps, rng, device)
    before: list = []
    if cfg.mining == "index":
        before.append(IndexRefresh(data, rows, cfg, step_fn.sampler, rng))
    if cfg.hard_after is not None:
        before.append(HardMiningSwitch(step_fn.miner, cfg.hard_after))
    selection = ModelSelection(validator, cfg)

    run = Run(model=model, steps=steps, progress=progress)
    if adapted or notes:
        run.report({"event": "adapt", "step": 0, "adapted": adapted, "notes": notes})
    _loop(run, step_fn, before, CollapseRollback(cfg, selection), selection, cfg.log_every)
    timings = run.timings()
    selection.restore(run)
    model.eval()
    run.report({"event": "done", "step": run.step, "status": run.status,
                "best_val_ari": selection.best_ari, "best_step": selection.best_step})
    return TrainResult(
        model=model, model_config=mcfg.to_dict(), train_config=cfg.to_dict(),
        status=run.status, message=run.message, steps=run.step,
        best_step=selection.best_step, best_val_ari=float(selection.best_ari),
        initial_val_ari=float(selection.initial_ari), threshold=float(selection.best_threshold),
        class_ids=train_ids.tolist(), val_artists=val_ids.tolist(),
        history=run.history, timings=timings, val_unit=val_unit, adapted=adapted, notes=notes,
    )


def fit_to_catalog(cfg: TrainConfig, rows: TrainRows, plan: ValidationPlan
                   ) -> tuple[TrainConfig, dict, list[str]]:
    """``(config used, adapted, notes)``: the batch fitted to the training artists
    (:func:`~artdb.core.learn.sampling.fit_batch_shape`) and what the validation split changed.

    ``adapted``: option -> ``{"asked", "used"}`` for each value a small catalog changed;
    ``notes``: one sentence each. A catalog that fills the configured batch gets ``cfg`` back.
    """
    n_artists = len(np.unique(rows.artists))
    P, m = fit_batch_shape(rows.artists, cfg.artists_per_batch, cfg.per_artist)
    adapted: dict = {}
    notes: list[str] = []
    if P != cfg.artists_per_batch:
        adapted["artists_per_batch"] = {"asked": cfg.artists_per_batch, "used": P}
        notes.append(f"{P} artists per batch (asked {cfg.artists_per_batch}): "
                     f"{n_artists} artists to train on")
    if m != cfg.per_artist:
        adapted["per_artist"] = {"asked": cfg.per_artist, "used": m}
        median = int(np.median(np.unique(rows.artists, return_counts=True)[1]))
        notes.append(f"{m} tracks per artist (asked {cfg.per_artist}): the median training artist "
                     f"has {median}; artists with fewer repeat tracks")
    if plan.note:
        if plan.asked != len(plan.val_ids):
            adapted["val_artists"] = {"asked": plan.asked, "used": len(plan.val_ids)}
        notes.append(plan.note)
    if P != cfg.artists_per_batch or m != cfg.per_artist:
        cfg = dataclasses.replace(cfg, artists_per_batch=P, per_artist=m)
    return cfg, adapted, notes


def _loop(run: Run, step_fn: TrainStep, before: list, collapse: CollapseRollback,
          selection: ModelSelection, log_every: int) -> None:
    """Each step: the hooks before it, one optimisation step, its log event, the hooks after it
    (collapse first: a collapsed step is not validated); a hook may stop the run."""
    selection.start(run)
    run.t_start = time.perf_counter()
    for step in range(1, run.steps + 1):
        run.step = step
        for hook in before:
            hook(run)
        out = step_fn(run)
        out.collapse = collapse.check(out)
        if run.step % log_every == 0 or run.step == 1 or out.collapse:
            run.report(out.event(run.step))
        for hook in (collapse, selection):
            if not run.stopped:
                hook(run, out)
        if run.stopped:
            return


# -- the run and one step --------------------------------------------------------------------------
@dataclass
class Run:
    """The state a training run shares with its hooks: where it is, what it reported, why it stopped."""

    model: ArtistNet
    steps: int
    progress: Progress | None = None
    step: int = 0
    status: str = "completed"
    message: str = ""
    history: list[dict] = field(default_factory=list)
    t_start: float = 0.0
    refresh_s: float = 0.0
    n_refresh: int = 0
    val_s: float = 0.0
    excerpts_seen: int = 0
    stopped: bool = False

    def __post_init__(self):
        self.message = f"trained {self.steps} steps"

    def report(self, event: dict) -> None:
        """Keep ``event`` in the history and pass it on as ``progress("train", step, steps, ...)``."""
        self.history.append(event)
        info = {k: v for k, v in event.items() if k != "step"}
        report(self.progress, "train", int(event["step"]), self.steps, **info)

    def stop(self, status: str, message: str) -> None:
        self.status, self.message, self.stopped = status, message, True

    def timings(self) -> dict:
        train_s = time.perf_counter() - self.t_start
        return {
            "train_s": train_s,
            "refresh_s": self.refresh_s,
            "refresh_fraction": self.refresh_s / train_s if train_s > 0 else 0.0,
            "n_refresh": self.n_refresh,
            "val_s": self.val_s,
            "excerpts_per_s": self.excerpts_seen / max(train_s - self.refresh_s - self.val_s, 1e-9),
        }


class TrainRows:
    """The training artists' rows of ``data`` and their labels (softmax classes, albums, genres)."""

    def __init__(self, data: TrainingData, train_ids: np.ndarray):
        self.rows = np.flatnonzero(np.isin(data.artists, train_ids))
        class_of = {a: i for i, a in enumerate(train_ids.tolist())}
        self.artists = data.artists[self.rows]
        self.classes = np.array([class_of[a] for a in self.artists.tolist()], dtype=np.int64)
        self.albums, self.genres = data.albums[self.rows], data.genres[self.rows]


@dataclass
class StepOutput:
    """What one optimisation step measured (``collapse``: the guard's reason, set by the loop)."""

    loss: float
    spread: float
    lr: float
    parts: dict
    active_fraction: float | None = None
    triplets: int | None = None
    collapse: str | None = None

    def event(self, step: int) -> dict:
        ev = {"event": "step", "step": step, "loss": self.loss, "spread": self.spread, "lr": self.lr,
              **self.parts}
        if self.triplets is not None:
            ev["active_fraction"] = self.active_fraction
            ev["triplets"] = self.triplets
        return ev


def _prepare_model(model, data: TrainingData, cfg: TrainConfig, n_classes: int, device):
    """``(model, model config)``: a new network (hybrid when ``stats_weight`` > 0 and the features
    have the mel bands for it) or the given one checked against the data; on ``device``, training."""
    use_cl = cfg.method in ("cl", "joint")
    # the stats part needs STATS_N_MFCC mel bands; with fewer the model is the CNN alone
    hybrid = cfg.stats_weight > 0 and data.n_mels >= STATS_N_MFCC
    stats_dim = 4 * (STATS_N_MFCC - 1) if hybrid else 0
    mcfg = ModelConfig(
        n_mels=data.n_mels,
        embedding_dim=cfg.embedding_dim + stats_dim,
        channels=cfg.channels,
        input_norm=cfg.input_norm,
        n_classes=n_classes if use_cl else 0,
        stats_dim=stats_dim,
        stats_weight=cfg.stats_weight if hybrid else 0.0,
        stats_n_mfcc=STATS_N_MFCC,
    )
    if model is None:
        model = build_model(mcfg)
        if stats_dim:  # fitted on every track (no labels used), as `add-baseline stats` does
            model.set_stats_standardizer(*fit_standardizer(data.features, STATS_N_MFCC))
    else:
        if model.cfg.n_mels != data.n_mels:
            raise ConfigError(f"model expects {model.cfg.n_mels} mel bands, data has {data.n_mels}")
        if use_cl and (model.classifier is None or model.cfg.n_classes != n_classes):
            raise ConfigError(f"method {cfg.method!r} needs a head with {n_classes} classes")
        mcfg = model.cfg
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    model.to(device).train()
    return model, mcfg


class TrainStep:
    """One optimisation step: sample a batch, read excerpts, mine triplets, descend the loss."""

    def __init__(self, data: TrainingData, rows: TrainRows, cfg: TrainConfig, model: ArtistNet,
                 steps: int, rng: np.random.Generator, device):
        self.data, self.rows, self.model, self.rng, self.device = data, rows, model, rng, device
        sampler_cls = NeighbourBatchSampler if cfg.mining == "index" else ArtistBatchSampler
        extra = {"pair_share": cfg.index_pair_share} if cfg.mining == "index" else {}
        self.sampler = sampler_cls(
            rows.artists, rows.albums, rows.genres,
            artists_per_batch=cfg.artists_per_batch, per_artist=cfg.per_artist, batches=steps,
            same_genre_share=cfg.same_genre_share, seed=cfg.seed, **extra,
        )
        self.miner = SideInfoTripletMiner(
            margin=cfg.margin, type_of_triplets="hard" if cfg.mining == "hard" else "semihard",
            p_other_album=cfg.p_other_album, p_same_genre=cfg.p_same_genre, seed=cfg.seed,
        )
        self.loss_fn = ArtistLoss(cfg.method, cfg.margin, cfg.ml_weight, cfg.cl_weight)
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = None
        if cfg.lr_schedule == "cosine":
            self.sched = torch.optim.lr_scheduler.LambdaLR(
                self.opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)) * 0.95 + 0.05)
        self.amp = cfg.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.crop = cfg.crop_frames if cfg.crop_frames and cfg.crop_frames < data.n_frames else None

    def __call__(self, run: Run) -> StepOutput:
        local = np.asarray(self.sampler.sample_batch(), dtype=np.int64)
        rows = self.rows.rows[local]
        xb = torch.from_numpy(read_excerpts(self.data.features, rows, self.rng, self.crop))
        xb = xb.to(self.device, non_blocking=True)
        labels = torch.from_numpy(self.rows.classes[local]).to(self.device)
        run.excerpts_seen += len(rows)

        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            emb, logits = self.model(xb)
        triplets = None
        if self.loss_fn.use_ml:
            triplets = self.miner(emb, labels, albums=self.rows.albums[local], genres=self.rows.genres[local])
        loss, parts = self.loss_fn(emb, logits, labels, triplets)
        self._descend(loss)

        out = StepOutput(loss=float(loss.detach()), spread=mean_pairwise_distance(emb),
                         lr=self.opt.param_groups[0]["lr"], parts=parts)
        if self.loss_fn.use_ml:
            out.active_fraction, out.triplets = self.miner.active_fraction, int(len(triplets[0]))
        return out

    def _descend(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        if self.sched is not None:
            self.sched.step()


def read_excerpts(features, rows: np.ndarray, rng: np.random.Generator,
                  crop: int | None = None) -> np.ndarray:
    """One random excerpt per row (and a random ``crop``-frame window): ``[len(rows), mels, frames']``
    float32."""
    exc = rng.integers(features.shape[1], size=len(rows))
    x = np.asarray(features[rows, exc], dtype=np.float32)
    if crop and crop < x.shape[-1]:
        starts = rng.integers(0, x.shape[-1] - crop + 1, size=len(rows))
        x = np.stack([x[i, :, s : s + crop] for i, s in enumerate(starts)])
    return np.ascontiguousarray(x)


# -- hooks before a step ---------------------------------------------------------------------------
def make_search_index(dim: int, backend: str = "auto", device: str = "cpu"):
    """An empty exact cosine index from ``artdb.indexer`` for index mining.

    ``torch``/``auto``: ``TorchExactIndex`` on the training device (no FAISS GPU build needed);
    ``faiss``: FAISS ``IDMap2,Flat``.
    """
    if backend == "faiss":
        return VectorIndex.exact(dim)
    return TorchExactIndex(dim, device=device)


class IndexRefresh:
    """Index mining: every ``index_refresh_every`` steps, re-embed one excerpt of each training
    track, index the vectors exactly and give the sampler each anchor's nearest other-artist
    neighbours — skipped while refreshing has cost more than ``index_budget`` of the step time."""

    def __init__(self, data: TrainingData, rows: TrainRows, cfg: TrainConfig, sampler, rng):
        self.data, self.rows, self.cfg, self.sampler, self.rng = data, rows, cfg, sampler, rng

    def due(self, run: Run) -> bool:
        if run.step % self.cfg.index_refresh_every:
            return False
        budget = self.cfg.index_budget
        elapsed = time.perf_counter() - run.t_start
        return (run.n_refresh == 0 or budget is None
                or run.refresh_s <= budget * (elapsed - run.refresh_s - run.val_s))

    def __call__(self, run: Run) -> None:
        if not self.due(run):
            return
        cfg, rows = self.cfg, self.rows.rows
        t0 = time.perf_counter()
        exc = self.rng.integers(self.data.n_excerpts, size=len(rows))
        vecs = embed(run.model, self.data.features, cfg.device, cfg.batch_size_embed, tracks=rows,
                     excerpts=exc, hybrid=False)
        with indexer_errors():  # the indexer's exceptions become core's
            index = make_search_index(vecs.shape[1], cfg.index_backend, cfg.device)
            neighbours = other_artist_neighbours(index, vecs, self.rows.artists, cfg.index_neighbours)
        self.sampler.set_neighbours(neighbours)
        dt = time.perf_counter() - t0
        run.refresh_s += dt
        run.n_refresh += 1
        run.report({"event": "refresh", "step": run.step, "seconds": dt, "n_tracks": len(rows)})


class HardMiningSwitch:
    """Semi-hard mining becomes hard once ``hard_after`` of the steps are done."""

    def __init__(self, miner: SideInfoTripletMiner, hard_after: float):
        self.miner, self.hard_after = miner, hard_after

    def __call__(self, run: Run) -> None:
        if self.miner.type_of_triplets != "hard" and run.step > self.hard_after * run.steps:
            self.miner.type_of_triplets = "hard"
            run.report({"event": "mining", "step": run.step, "type": "hard"})


# -- hooks after a step ----------------------------------------------------------------------------
def _state_copy(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class ModelSelection:
    """Best-so-far weights by validation ARI, early stopping after ``patience`` checks without a
    gain, and the last good weights a collapse rolls back to.

    Without validation (no held-out groups) the weights are snapshot every ``val_every`` steps and
    the last ones are kept.
    """

    def __init__(self, validator: Validator, cfg: TrainConfig):
        self.validator, self.cfg = validator, cfg
        self.initial_ari = self.best_ari = self.best_threshold = float("nan")
        self.best_step = self.good_step = self.bad_checks = 0
        self.best_state = self.good_state = None

    def start(self, run: Run) -> None:
        """Score the starting weights (step 0) and keep them as the best so far."""
        if self.validator.enabled:
            self.initial_ari, self.best_threshold = self.validator(run.model)
            run.report({"event": "val", "step": 0, "val_ari": self.initial_ari,
                        "threshold": self.best_threshold})
        self.best_ari = self.initial_ari
        self.best_state = self.good_state = _state_copy(run.model)

    @property
    def rollback_step(self) -> int:
        """The step whose weights a collapse restores."""
        return self.best_step if self.validator.enabled else self.good_step

    def __call__(self, run: Run, out: StepOutput) -> None:
        step, every = run.step, self.cfg.val_every
        if self.validator.enabled and (step % every == 0 or step == run.steps):
            self.validate(run)
        elif not self.validator.enabled and step % every == 0:
            self.good_state, self.good_step = _state_copy(run.model), step
            self.best_state, self.best_step = self.good_state, step

    def validate(self, run: Run) -> None:
        t0 = time.perf_counter()
        ari, t = self.validator(run.model)
        run.val_s += time.perf_counter() - t0
        run.model.train()
        run.report({"event": "val", "step": run.step, "val_ari": ari, "threshold": t})
        self.good_state, self.good_step = _state_copy(run.model), run.step
        improved = ari > self.best_ari + 1e-9 or not math.isfinite(self.best_ari)
        if improved or ari >= self.best_ari - 1e-9:
            # a tie keeps the later (longer-trained) weights; only a gain resets the patience
            self.best_ari, self.best_step, self.best_threshold = ari, run.step, t
            self.best_state = self.good_state
        if improved:
            self.bad_checks = 0
            return
        self.bad_checks += 1
        if self.cfg.patience and self.bad_checks >= self.cfg.patience:
            run.stop("early_stopped",
                     f"early stop at step {run.step}: no validation gain in {self.bad_checks} checks")

    def restore(self, run: Run) -> None:
        """Load the selected weights: the best validated, else the last (a collapse: the last good)."""
        collapsed = run.status == "collapsed"
        if not self.validator.enabled and not collapsed:
            self.best_state, self.best_step = _state_copy(run.model), run.step
        run.model.load_state_dict(
            self.best_state if not collapsed or self.validator.enabled else self.good_state)


class CollapseGuard:
    """Watches embedding spread, active triplets and loss; ``update`` returns a reason once collapsed.

    Spread is the mean pairwise distance of the batch's unit embeddings (~1.41 when spread out, 0
    when all equal). A step is *degenerate* if spread < ``min_spread``, or if nearly every triplet
    is active (>= ``max_active``) while spread < ``3 * min_spread`` (the triplet loss sitting at
    the margin). Collapse: a non-finite loss (at once), or ``patience`` consecutive degenerate steps
    after ``warmup`` steps (a freshly initialised network can start with a small spread).
    """

    def __init__(self, min_spread: float = 0.1, patience: int = 3, warmup: int = 20,
                 max_active: float = 0.98):
        self.min_spread = float(min_spread)
        self.patience = max(1, int(patience))
        self.warmup = int(warmup)
        self.max_active = float(max_active)
        self.low = 0
        self.steps = 0

    def update(self, loss: float, spread: float, active_fraction: float | None = None) -> str | None:
        self.steps += 1
        if not math.isfinite(loss):
            return f"loss became {loss}"
        if not math.isfinite(spread):
            return f"embedding spread became {spread}"
        degenerate = spread < self.min_spread or (
            active_fraction is not None and active_fraction >= self.max_active
            and spread < 3 * self.min_spread
        )
        self.low = self.low + 1 if degenerate and self.steps > self.warmup else 0
        if self.low >= self.patience:
            act = "" if active_fraction is None else f", {active_fraction:.0%} of triplets active"
            return (
                f"embeddings collapsed: mean pairwise distance {spread:.4f} "
                f"(limit {self.min_spread}){act} for {self.low} steps"
            )
        return None


class CollapseRollback:
    """Stops the run when :class:`CollapseGuard` sees a collapse (the loop restores the weights
    :class:`ModelSelection` kept), or raises :class:`TrainingCollapsedError` with
    ``on_collapse="raise"``."""

    def __init__(self, cfg: TrainConfig, selection: ModelSelection):
        self.guard = CollapseGuard(cfg.min_spread, cfg.collapse_patience, cfg.collapse_warmup)
        self.on_collapse, self.selection = cfg.on_collapse, selection

    def check(self, out: StepOutput) -> str | None:
        """The guard's reason to stop after this step's loss and spread (None: go on)."""
        return self.guard.update(out.loss, out.spread, out.active_fraction)

    def __call__(self, run: Run, out: StepOutput) -> None:
        if not out.collapse:
            return
        step, reason = run.step, out.collapse
        message = (f"training stopped at step {step}: {reason}; "
                   f"rolled back to the weights of step {self.selection.rollback_step}")
        run.report({"event": "collapse", "step": step, "reason": reason})
        if self.on_collapse == "raise":
            raise TrainingCollapsedError(f"training stopped at step {step}: {reason}")
        run.stop("collapsed", message)
