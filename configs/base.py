"""Every config field, with its default, meaning and unit. Named configs import this and override a few fields.

    python main.py --config=configs/base.py --workdir=runs/base

Config strings: `configs/base.py:tiny` (seconds-long runs), `:data=/path/to/mvtec_root`, `:steps=10`, `:large`
(the full-resolution, larger-UNet variant for a GPU), combined with commas (`:tiny,data=/path`).
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from crackjax.config import parse_config_string, validate


def defaults() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0  # every random draw (init, noise, crops, healing) derives from this

  c.compute = ml_collections.ConfigDict()  # how the computation runs: precision and hosts
  c.compute.dtype = "float32"  # 'float32' | 'bfloat16': the networks' compute dtype (parameters stay float32)
  c.compute.distributed = False  # jax.distributed.initialize() (also when JAX_COORDINATOR_ADDRESS is set)
  c.compute.coordinator_timeout = 120  # seconds a process waits for the coordinator before failing

  c.data = ml_collections.ConfigDict()
  c.data.root = ""  # MVTec-layout root; "" = the built-in synthetic concrete
  c.data.tfds_dir = ""  # where prepared array_record datasets go; "" = <workdir>/tfds
  c.data.resize = 1.0  # scale factor applied to every image on load (0.5 = half resolution)
  c.data.crop_size = 32  # training crop side, pixels after resizing
  c.data.val_fraction = 0.1  # share of train/good held out as val when a root has no val/
  c.data.stream = False  # stream training crops (grain) and evaluation images (decoded as scored): data beyond memory
  c.data.stream_workers = 2  # grain's decoding processes when streaming (0: in the training process)
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.image_size = 64  # side of each synthetic image, pixels
  c.data.synthetic.seed = 0  # the data set's own seed (fixed, so models with other seeds see the same data)
  c.data.synthetic.num_train = 1000  # train/good images
  c.data.synthetic.num_val = 50  # val images per class (good, crack)
  c.data.synthetic.num_test = 100  # test images per class (good, crack)
  c.data.synthetic.num_unlabeled = 200  # unlabeled pool (15% cracked, labels withheld)
  c.data.synthetic.distractor_prob = 0.5  # chance of a stain, water mark or shadow in an image

  c.model = ml_collections.ConfigDict()
  c.model.kind = "teacher"  # what is trained and scored (crackjax/kinds.py): 'teacher' (diffusion UNet), 'student', ...
  c.model.channels = 32  # UNet channels at full resolution
  c.model.channel_mult = (1, 2, 2)  # channel multiplier per resolution level
  c.model.num_res_blocks = 1  # residual blocks per level
  c.model.num_groups = 8  # GroupNorm groups

  c.schedule = ml_collections.ConfigDict()
  c.schedule.kind = "linear"  # 'linear' | 'cosine' beta schedule
  c.schedule.num_timesteps = 1000  # T
  c.schedule.beta_start = 1e-4  # linear schedule's first beta (for T = 1000; rescaled for other T)
  c.schedule.beta_end = 0.02  # linear schedule's last beta

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 400  # optimizer steps in total (a rerun with more steps continues)
  # "" = train from scratch; else the UNet starts from this teacher's EMA parameters (fine-tuning): a shipped
  # teacher's name (crackjax/weights/<name>.npz), an exported params.npz, or a trained teacher's workdir
  c.train.init_from = ""
  c.train.batch_size = 32  # crops per step, split over devices (must divide by the device count)
  c.train.learning_rate = 2e-3  # AdamW peak learning rate
  c.train.warmup_steps = 50  # linear warm-up, then cosine decay to 0 at num_steps
  c.train.ema_decay = 0.995  # EMA of params used for healing (ramped up as (1 + step) / (10 + step))
  c.train.t_min = 0  # smallest training timestep
  c.train.t_max = 200  # largest training timestep: healing only visits t <= anomaly.t_start, so stop well above it
  # > 0: at every checkpoint the EMA model is scored on val's sound photos against the same photos with synthetic
  # cracks (AUROC; the start counts too), a checkpoint is kept only when it scores higher, and training stops after
  # this many checkpoints without: the workdir's model is the best one (0: off; teachers only)
  c.train.patience = 0
  c.train.log_every = 50  # steps between console/TensorBoard logs (also the NaN-check interval)
  c.train.checkpoint_every = 200  # steps between checkpoints

  c.sampler = ml_collections.ConfigDict()
  c.sampler.kind = "ddim"  # 'ddim' | 'ddpm'
  c.sampler.num_steps = 50  # S: steps of the sampling schedule over [0, T); healing runs those below t_start
  c.sampler.eta = 0.0  # DDIM stochasticity (0 deterministic, 1 DDPM-like)

  c.anomaly = ml_collections.ConfigDict()
  c.anomaly.t_start = 30  # healing noises the input to this timestep (chosen on val, see README)
  c.anomaly.heal_steps = 0  # reverse steps from t_start: 0 = the sampler's share of its S steps; 1 = one-step x0 estimate
  c.anomaly.num_draws = 2  # independent healings whose residuals are averaged per image
  c.anomaly.average = "residual"  # over the draws: 'residual' (mean of the residuals) | 'healing' (residual of the mean)
  c.anomaly.antithetic = False  # draws in pairs with noise eps and -eps (anomaly.num_draws even)
  c.anomaly.smoothing_sigma = 2.0  # Gaussian smoothing of the map, pixels (0 = none); the line filter's width
  c.anomaly.line_sigma = 0.0  # > 0: oriented line filter of this length (sigma along, pixels) instead of the Gaussian
  c.anomaly.pyramid = 1  # > 1: also heal at 1/2, 1/4, ... resolution; the map is the pixelwise max (wide cracks)
  c.anomaly.darkness = 0.0  # > 0: the map is at least this times the input's relative darkness (darkness.sigma)
  # > 0: the localization map (red mask, pixel metrics, overlays, saved maps) is the image map plus this times the
  # input's darkness relative to its mean luminance; the image score stays the image map's (0: the image map localizes)
  c.anomaly.localization_darkness = 0.0
  # > 0: that darkness also in units of the image's luminance spread, (mean - L) (1 / mean + this / std): a faint
  # crack on a smooth surface counts as much as one of the same contrast on a rough surface
  c.anomaly.localization_zscore = 0.0
  # > 0: that darkness's reference is the luminance smoothed with this sigma (map pixels), not the image's mean, so
  # that a photo lit unevenly is not dark on its darker side
  c.anomaly.localization_background = 0.0
  # the luminance's smoothing (pixels) in that darkness; the image map's darkness keeps darkness.sigma
  c.anomaly.localization_sigma = 1.0
  c.anomaly.channels = "mean"  # 'mean': residual per colour channel, averaged | 'luma': luminance residual only
  c.anomaly.pooling = "topk"  # image score: 'max', 'topk' (mean of the top fraction), 'topk_minus_median', 'topk_mad'
  c.anomaly.topk_fraction = 0.01  # fraction of pixels averaged by 'topk'
  c.anomaly.mad_floor = 1e-3  # 'topk_mad' divides by the map's MAD plus this (map units): large = topk_minus_median
  c.anomaly.border = 0  # pixels of the map's frame (each side) left out of the image score and the red mask

  c.eval = ml_collections.ConfigDict()
  c.eval.root = ""  # evaluate on this root instead of data.root (writes <workdir>/eval/<name>/)
  c.eval.name = ""  # names an evaluation: writes <workdir>/eval/<name>/ ("" = the root's folder name, or the workdir itself)
  c.eval.batch_size = 16  # images per healing batch
  c.eval.max_images = 0  # cap per split, good and anomalous alternating (0 = all)
  c.eval.test = True  # False: score val only (choosing a setting; the test split stays unseen)
  c.eval.save_maps = False  # True: also write maps_val.npz / maps_test.npz (every localization map, float32)
  c.eval.threshold_percentile = 99.0  # threshold = this percentile of val/good scores when val has no anomalies
  c.eval.num_examples = 4  # four-panel figures per class, and per gallery of worst cases
  # images per pass within an eval batch (0 = the whole batch at once): the same maps; on a CPU a small pass stays
  # in cache (docs/benchmark.md: the student 1.2-1.3x, the teacher about 1.15x faster than in one pass of 16)
  c.eval.micro_batch = 4
  c.eval.tile_max_side = 768  # images whose longer side (after resizing) exceeds this are scored in tiles
  c.eval.tile_size = 384  # tile side, pixels
  # context cut away at inner tile borders, pixels: seam-free when it covers the model's reach (44 px for the
  # students up to K = 3, 81 px for K = 4, times student.input_stride; the diffusion UNet's GroupNorm sees the
  # whole tile)
  c.eval.tile_overlap = 48

  c.student = ml_collections.ConfigDict()
  c.student.architecture = "coarse_to_fine"  # 'single_step' | 'coarse_to_fine' (model.kind = 'student')
  c.student.stages = 3  # K: coarse_to_fine's stages (a coarse map, then K - 1 refinements, each a level finer)
  c.student.channels = 16  # student features at full resolution (2x at the lower levels)
  # 1 | 2 | 4: the student reads s x s pixel blocks as channels (space to depth), so its finest stage works at 1/s
  # of the image's resolution (about 1/s^2 of the work) and its map is upsampled back
  c.student.input_stride = 1
  c.student.target = "soft"  # 'soft': regress the teacher's maps | 'binary': the teacher's maps thresholded
  c.student.teacher_workdir = ""  # a trained teacher's workdir; "" = train one into <workdir>/teacher first
  c.student.teacher_sampler = ""  # "" = the teacher's own sampler | 'ddpm' | 'ddim_eta0' | 'ddim_eta1' for its maps
  c.student.teacher_heal_steps = 0  # 0 = the teacher's own; else its healing steps for the maps (anomaly.heal_steps)
  c.student.synthetic_cracks = 0.0  # add this fraction of the pool again with a synthetic crack drawn on it
  c.student.max_pool_images = 0  # cap on the pool (0 = all), a seeded random subset
  c.student.cache_dir = ""  # where teacher maps are cached ("" = <workdir>/teacher_maps); students can share one
  c.student.cache_shard_size = 256  # teacher maps per cached shard
  c.student.num_steps = 1500  # optimizer steps
  c.student.batch_size = 16  # crops per step
  c.student.crop_size = 64  # training crop side, pixels after resizing
  c.student.learning_rate = 3e-3  # Adam peak learning rate (warm-up, then cosine decay)
  c.student.warmup_steps = 50  # linear warm-up steps

  c.baseline = ml_collections.ConfigDict()  # model kinds 'ae', 'vae', 'memae', 'draem' (crackjax/baselines/)
  c.baseline.channels = 16  # encoder/decoder channels at full resolution (x2 per level, 3 levels down to 1/8)
  c.baseline.latent_channels = 8  # the bottleneck: channels of the 1/8-resolution latent
  c.baseline.crop_size = 64  # training crop side, pixels after resizing (divisible by 8)
  c.baseline.num_steps = 2000  # optimizer steps
  c.baseline.batch_size = 16  # crops per step
  c.baseline.learning_rate = 2e-3  # Adam peak learning rate (warm-up, then cosine decay)
  c.baseline.warmup_steps = 50  # linear warm-up steps
  c.baseline.beta = 1.0  # VAE: weight of the KL term
  c.baseline.vae_sigma = 0.1  # VAE: decoder standard deviation s, in [-1, 1] pixel units
  c.baseline.mc_samples = 4  # VAE: latent draws averaged by the reconstruction-probability map
  c.baseline.memory_size = 64  # MemAE: prototypes M in the memory
  c.baseline.shrink_threshold = 0.0  # MemAE: hard-shrinkage lambda (0 = 1/M)
  c.baseline.entropy_weight = 0.0002  # MemAE: weight alpha of the addressing entropy loss
  c.baseline.disc_channels = 16  # DRAEM: discriminative network channels
  c.baseline.draem_p_anomaly = 0.5  # DRAEM: share of training crops with a synthetic anomaly
  c.baseline.focal_gamma = 2.0  # DRAEM: focal loss exponent

  c.darkness = ml_collections.ConfigDict()  # model kind 'darkness' (crackjax/baselines/darkness.py): no learning
  c.darkness.map = "relative"  # 'relative': (median - L) / median of the luminance L | 'tophat': black top-hat of L
  c.darkness.sigma = 1.0  # smoothing of the luminance, pixels
  c.darkness.tophat_size = 15  # square of the top-hat's closing, pixels (dark structures narrower than it light up)

  c.sweep = ml_collections.ConfigDict()  # --mode=sweep (configs/sweep_steps.py)
  c.sweep.name = "steps"  # writes <workdir>/sweep/<name>/
  c.sweep.samplers = ("ddpm", "ddim_eta0", "ddim_eta1")  # sampler variants (crackjax.samplers.VARIANTS)
  c.sweep.steps = (1, 2, 5, 10, 20, 50, 100, 250, 1000)  # healing steps from t_start; those > t_start + 1 are skipped
  c.sweep.max_images = 0  # test images per row, good and anomalous alternating (0 = all)

  c.toy = ml_collections.ConfigDict()  # --mode=toy: the memorization experiment (configs/toy_skeleton.py, crackjax/toy.py)
  c.toy.target = "skeleton"  # 'skeleton' (1-px crack skeletons) | 'heatmap' (blurred crack masks)
  c.toy.image_size = 32  # toy image side, pixels (trained whole)
  c.toy.num_train = 1000  # training images

  c.benchmark = ml_collections.ConfigDict()  # --mode=benchmark (crackjax/benchmark.py)
  c.benchmark.predict = True  # also time predict on 227x227 images, a 4000x3000 photo and a mixed-size folder

  c.predict = ml_collections.ConfigDict()
  c.predict.input = ""  # folder (or one image) to score in --mode=predict
  c.predict.name = ""  # output folder name under <workdir>/predict/ ("" = the input's folder name)
  c.predict.threshold = -1.0  # decision threshold; < 0 = from the operating point below, calibrated on val
  # 'val_f1' (the evaluation's threshold), 'recall:0.99' (highest threshold with val recall >= 0.99) or
  # 'false_alarms:0.01' (lowest threshold flagging <= 1% of val good images); saved at evaluation time
  c.predict.operating_point = "val_f1"
  c.predict.redo = False  # score files already in predictions.csv again (False: a rerun resumes, skipping them)
  c.predict.overlays = "all"  # four-panel figures for 'all' images, only 'flagged' ones, or 'none'
  c.predict.max_megapixels = 50.0  # larger photos get an error row instead of being decoded
  c.predict.mm_per_pixel = 0.0  # > 0: the photos' scale, so cracks.csv also gives lengths and widths in millimetres
  # a folder of ground-truth masks (<stem>_mask.png, white = crack): predict's summary then scores its red masks
  c.predict.masks = ""

  # the red mask (crackjax/mask.py): hysteresis on the localization map, in the same units for every photo,
  # chosen at evaluation time on the training root's sound val photos with synthetic cracks drawn in
  c.mask = ml_collections.ConfigDict()
  c.mask.low = -1.0  # a red region's pixels reach at least this (map units); < 0: the calibrated value
  c.mask.high = -1.0  # ... and one of them at least this; < 0: the calibrated value
  c.mask.min_length = -1.0  # ... and its bounding box's diagonal this many working-resolution pixels; < 0: calibrated
  c.mask.on_good = False  # red also on photos whose verdict is "good" (False: a passed photo carries no red)
  c.mask.explain = True  # a flagged photo with no red region shows its strongest one (its map's top 0.5% at the peak)
  c.mask.calibration_images = 200  # sound val photos the decision is chosen on (each also with a synthetic crack)
  return c


def make_large(c: ml_collections.ConfigDict) -> None:
  """`:large`, for an accelerator (one H200 trains it in 4 minutes; a 2-core CPU would take hours): full resolution,
  64x64 crops, a 64-channel UNet with four levels of two blocks (8.6M parameters), batches of 64 for 6,000 steps,
  whole eval batches. The score keeps its settings in pixels: on concrete_pavement val they scored 0.9954, and
  with their lengths doubled with the resolution (line filter, smoothing, border, one more pyramid level) 0.9875
  (docs/research_log.md)."""
  c.data.update(resize=1.0, crop_size=64)
  c.model.update(channels=64, channel_mult=(1, 2, 2, 2), num_res_blocks=2)
  c.train.update(batch_size=64, num_steps=6000, checkpoint_every=1000, warmup_steps=200)
  c.eval.update(batch_size=64, micro_batch=0)  # one pass per batch: an accelerator wants the whole batch


def shrink_to_tiny(c: ml_collections.ConfigDict) -> None:
  """A run of seconds: tiny data, tiny UNet, few steps (tests and CI)."""
  c.data.synthetic.update(image_size=32, num_train=16, num_val=4, num_test=6, num_unlabeled=8)
  c.data.crop_size = 16
  c.model.update(channels=8, channel_mult=(1, 2), num_res_blocks=1, num_groups=4)
  # The sampler keeps its share of the schedule: DDIM-50 of 1000 -> 5 of 100, DDPM-1000 of 1000 -> 100 of 100.
  c.sampler.num_steps = max(1, c.sampler.num_steps * 100 // c.schedule.num_timesteps)
  c.schedule.num_timesteps = 100
  c.train.update(num_steps=4, batch_size=8, warmup_steps=1, log_every=2, checkpoint_every=2, t_min=0, t_max=99)
  c.train.init_from = ""  # the shipped teachers are full-size; a test fine-tunes from a tiny teacher of its own
  c.anomaly.t_start = 20
  c.eval.update(batch_size=4, num_examples=2)
  c.student.update(channels=4, num_steps=4, batch_size=4, crop_size=16, cache_shard_size=8, warmup_steps=1)
  c.mask.calibration_images = 8
  c.baseline.update(channels=4, latent_channels=4, memory_size=8, crop_size=16, num_steps=4, batch_size=4, mc_samples=2)
  c.baseline.update(disc_channels=4, warmup_steps=1)
  c.sweep.steps = tuple(s for s in c.sweep.steps if s <= 2)
  c.toy.update(image_size=16, num_train=16)
  if c.data.root:
    c.eval.max_images = 8
    c.data.resize = min(c.data.resize, 0.25)
  if c.anomaly.line_sigma > 0:  # tiny maps (16 px buckets): a short line filter, still exercised
    c.anomaly.line_sigma = min(c.anomaly.line_sigma, 2.0)


def make_config(
  arg: str | None, customize: Callable[[ml_collections.ConfigDict], None] | None = None
) -> ml_collections.ConfigDict:
  """defaults -> real-data defaults (`data=`) -> the named config's `customize` -> `steps=` -> `tiny` -> validate
  -> lock."""
  args = parse_config_string(arg)
  c = defaults()
  if args.data:
    c.data.root = args.data
    real_data_defaults(c)
  if customize is not None:  # after the real-data defaults: a named config's own choices win
    customize(c)
  if args.steps:
    c.sampler.num_steps = args.steps
  if args.large:
    make_large(c)
  if args.tiny:
    shrink_to_tiny(c)
  validate(c)
  c.lock()
  return c


def real_data_defaults(c: ml_collections.ConfigDict) -> None:
  """Sizes and a score suited to real photos (about 200-550 px), chosen on concrete_pavement's val split (README).

  Half resolution, 32x32 crops, 2,400 steps on t in [50, 300] (37 min on a 2-core AMD EPYC, docs/benchmark.md), a
  student trained for 12,000 steps; the score is the one-step x0 estimate from t = 100 of an antithetic pair of noise
  draws (eps, -eps), the luminance residual of their mean healing (the noise the estimate lets through cancels)
  through the oriented line filter (sigma 10 along, 1 across), also at half that resolution (pyramid 2: wide
  cracks), at least 0.2 times the input's relative darkness (a crack as wide as the healing repaints); the image
  score is the mean of the top 0.5% of the map minus its median, over the map's MAD plus 0.03 (a busy surface's
  spread scales its peaks down), with the map's outer 4 pixels left out (the healing's frame). The red mask and
  the pixel metrics read a localization map, the image map plus 1.5 times the darkness relative to a wide
  background (a sum, chosen on synthetic-crack masks). How each was chosen: docs/research_log.md.
  """
  c.data.resize = 0.5
  c.data.crop_size = 32
  c.train.update(num_steps=2400, t_min=50, t_max=300, checkpoint_every=300)
  c.student.num_steps = 12000  # a student of these maps: val 0.9841 at 1,500 steps, 0.9888 at 6,000, 0.9945 at 12,000
  c.anomaly.update(
    t_start=100,
    heal_steps=1,
    num_draws=2,
    average="healing",
    antithetic=True,
    residual="abs",
    channels="luma",
    smoothing_sigma=1.0,
    line_sigma=10.0,
    pooling="topk_mad",
    topk_fraction=0.005,
    mad_floor=0.03,
    border=4,
    pyramid=2,
    darkness=0.2,
    localization_darkness=1.5,
    localization_zscore=0.05,
    localization_background=64.0,
    localization_sigma=0.75,
  )


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return make_config(arg)
