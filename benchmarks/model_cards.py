"""Re-run the evaluations behind the shipped model cards and write the cards.

For each shipped model (``blend-cfis``, ``sgq-kids``, ``sgq-sdss``, ``pointsource-sdss``) this
script holds the exact commands that produced the figures of its card
(``src/skysort/models/pretrained/NAME.md``) and runs them from a fresh clone:

1. ``simulate``: the held-out test sets, with the seeds and options of the card (and, for
   ``sgq-sdss``, ``skysort cutout`` of the real SDSS field 003918-3-0213);
2. ``train``: only the two ``sgq-kids`` ablation models (``--branches image`` and
   ``--branches photometry``, the same two-stage schedule as the shipped model), which are not
   shipped; the shipped models themselves are evaluated as they are (their training commands
   are recorded in each model file and printed on its card);
3. ``evaluate``: ``skysort evaluate`` of each model on each test set (plus, for ``sgq-sdss``,
   :func:`skysort.tasks.sgq.evaluate_sgq_specphot` on the real SDSS DR17 spectroscopic table and,
   for ``pointsource-sdss``, the spectral encoder on real spectra);
4. ``card``: the task's ``write_model_card`` from the model metadata and the ``metrics.json``
   files, with the remarks below (``NOTES`` and ``SECTIONS`` of each model) as data.

Everything goes under ``--data DIR`` (``DIR/blend``, ``DIR/sgq``, ``DIR/pointsource``); a step
whose output exists is skipped, so an interrupted run resumes (``--force`` redoes it). Cards go
to ``--out`` (default ``DIR/cards``); ``--out src/skysort/models/pretrained`` replaces the
shipped ones. Real data are read from the shared data folder
(:func:`skysort.simulate.presets.shared_data_dir`).

The full run simulates about 135,000 test objects, trains four small models and evaluates
twelve times: hours on a 2-core CPU. ``--n N`` is a smoke run: every simulated set (and the
ablations' training set) has N objects and the ablations train for one epoch per stage; its
figures are meaningless, it only checks that the chain runs.

Run ``python benchmarks/model_cards.py --data /path/to/folder [--models sgq-kids ...]
[--steps simulate evaluate card] [--out DIR] [--n 200] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODELS = ("blend-cfis", "sgq-kids", "sgq-sdss", "pointsource-sdss")
STEPS = ("simulate", "train", "evaluate", "card")
SDSS_FIELD = "003918-3-0213"

# ------------------------------------------------------------------------------------------
# What produced each card: test sets (file stem -> skysort simulate options), evaluations
# (card row label -> (test set, evaluation folder)) and the remarks of the card.
# ------------------------------------------------------------------------------------------

#: Training data of blend-cfis: stage 1 parametric blends; stage 2 adds realistic blends made
#: only from the "train" half of the real COSMOS library (the tests use the other half).
BLEND_TRAINING = {
    "blend_train_param_s5": "--survey cfis --kind blends --mode parametric --noise-sigma 5 --n 120000 --seed 101",
    "blend_train_real_s5": "--survey cfis --kind blends --mode realistic --real-galaxies train --noise-sigma 5 --n 40000 --seed 201",
}
BLEND_STAGE1 = "--epochs 8 --patience 3 --max-objects 64000 --seed 1"
BLEND_STAGE2 = "--lr 5e-4 --epochs 5 --patience 2 --seed 3"
BLEND_STAGE2_PARAMETRIC_ROWS = 40000
BLEND_TESTS = {
    "blend_test_param_s14.5": "--survey cfis --kind blends --mode parametric --noise-sigma 14.5 --n 5000 --seed 8",
    **{f"blend_test_realB_s{sigma}": f"--survey cfis --kind blends --mode realistic --real-galaxies test --noise-sigma {sigma} --n 20000 --seed 7"
       for sigma in ("10", "14.5", "20", "30")},
}
BLEND_EVALUATIONS = {
    "parametric COSMOS, sigma 14.5 (unseen seed)": ("blend_test_param_s14.5", "eval_param_s14.5"),
    **{f"realistic (unseen real COSMOS galaxies), sigma {sigma}": (f"blend_test_realB_s{sigma}", f"eval_realB_s{sigma}")
       for sigma in ("10", "14.5", "20", "30")},
}
#: SEP runs beside the model on this evaluation only (it takes minutes per 20,000 stamps).
BLEND_SEP_EVALUATION = "eval_realB_s14.5"
BLEND_NOTES = [
    "Two training stages, both with `skysort train --task blend`: (1) 57,600 parametric blends (sigma 5, noise augmentation "
    "to 4-36 counts); (2) fine-tuning (`--init`) on 40,000 realistic blends made from the even rows of the real COSMOS "
    "library plus 40,000 of the parametric blends (`skysort.data.stampset.concatenate`). Realistic tests use the odd rows only "
    "(`--real-galaxies test`), so every test galaxy morphology is unseen. In the recorded command, `--init blend-cfis` is "
    "the stage-1 model, shipped under that name at the time.",
    "Stage 1 alone (parametric training only) read the substructure of real galaxies as companions: false-positive rate "
    "20% on the realistic sigma 14.5 test. Stage 2 brings it to about 4%, at the cost of near-blend accuracy (95% -> 79%).",
    "Near blends (< 10 px) remain the weak point on real galaxies, and accuracy drops at sigma 30 (far blends of faint "
    "companions are lost in the noise). The threshold 0.5 is not tuned; purity-completeness curves are in each "
    "evaluation's metrics.json.",
    "Blends are two galaxies; stamps with three or more sources were not in training.",
    "Longer training does not close the near-blend gap: a third stage (`--init` the shipped model, the stage-2 data, "
    "`--lr 2.5e-4 --epochs 5 --patience 2 --seed 4`, 37 min on this CPU) left the realistic sigma 14.5 test where it was "
    "(accuracy 96.2%, near blends 79.3%, false positives 4.5%), so it is not shipped. Its lower validation loss (0.199 against "
    "0.216) is no evidence: the validation split follows `--seed`, so with another seed it holds rows stage 2 trained on.",
    "The accuracy lost at sigma 30 is companions fading below detection. The four realistic tests hold the same blends "
    "(seed 7) at each noise level; `python benchmarks/blend_noise_limit.py` bins the blends by the companion's signal-to-"
    "noise ratio (its flux on the noise were it a point source detected with the PSF as matched filter: an upper bound "
    "for a galaxy). At sigma 30, 3,933 of the 10,013 companions fall below S/N 7 (none at sigma 10) and are found for 52%"
    " (S/N < 5) and 72% (5-7); companions at S/N >= 10 are found for 91-99% at every noise level. Over the isolated "
    "stamps plus the blends whose companion reaches S/N 10, accuracy is 96.4% / 96.3% / 95.6% / 96.0% at sigma 10 / 14.5 "
    "/ 20 / 30 (spread 0.8 points, against 6.5 points over all stamps, which misses the goal of 2). The BlendHunter "
    "paper's network drops 7.6 points from sigma 14 to 26 on its own tests (`reference/blendhunter`).",
    "Trained before sgq and blend training seeded the network's initial weights (torch seeds its default generator "
    "differently in every process): the commands above give a model that differs from this file within the spread between"
    " trainings, not bit for bit. Models trained since are reproducible from their seed.",
    "Near blends against the paper: BlendHunter's published completeness by separation (`reference/blendhunter`, its own "
    "parametric tests), re-weighted to the separations of these tests' near blends and interpolated to their noise "
    "(`benchmarks/blend_noise_limit.py`), is 78.1% / 74.5% / 68.9% / 59.0% at sigma 10 / 14.5 / 20 / 30, against 80.7% / "
    "79.2% / 77.4% / 67.4% for this model on unseen real galaxies (SExtractor in the paper: 41.1% / 42.2% / 41.5% / "
    "35.1%). The goal of 85% asks more than the paper's network reached; companions within 4 px (about one PSF FWHM) are "
    "found for 46% at sigma 14.5.",
    "A trial with star-forming knots, not shipped (2026-11-23): the simulator's `clumpy` mode gives the parametric discs 3-30 knots holding up to half of the disc light, with magnitudes and sizes drawn apart from the shapes as in the realistic mode. Fine-tuned from this model on 40,000 realistic blends (even rows, seed 201) plus 40,000 clumpy blends (seed 301), sigma 5 (`--init blend-cfis --lr 5e-4 --epochs 4 --patience 2 --seed 5`, 893 s on this CPU), it reached on the realistic tests accuracy 96.4% / 96.6% / 95.7% / 90.2% and near blends 72.4% / 73.6% / 69.9% / 60.4% at sigma 14.5 / 10 / 20 / 30, false positives 3.2-3.3%. At the threshold that gives this model's false-positive rate at sigma 14.5 (4.2%) its near-blend completeness is 74.8% against 79.3%: lumpy isolated galaxies teach the network to let compact lumps pass, and close faint companions look like such lumps. The rule set before the trial was to ship only for a near-blend gain above 1.5 points with false positives at most 5%.",
    "Where this model's errors are (realistic test, sigma 14.5): 76% of its 420 false positives come from 5 of the 50 test galaxies, and two of them (library rows 69 and 21) are called blended in 55% of their isolated stamps. They are faint HST galaxies (HSC r 24-26): brightened by 5-8 magnitudes, their cleaned images show lumps. Near-blend completeness is 8% / 55% / 75% / 85% / 92% at separations of 0-2 / 2-4 / 4-6 / 6-8 / 8-10 px, and 17% / 49% / 82% / 92% / 96% for companion-to-central flux ratios < 0.1 / 0.1-0.3 / 0.3-1 / 1-3 / > 3.",
    "Averaging over the eight rotations and flips of each stamp (`python benchmarks/blend_test_time_augmentation.py blend_test_realB_s14.5.h5`, 2026-11-23) finds 80.1% of near blends against 79.3% at the same false-positive rate (4.2%), and 81.6% against 81.1% at 5%, for eight forward passes per stamp: below the 1.5-point gain set beforehand as worth the cost, so prediction makes one pass.",
    "Trials with more near blends in training, not shipped (2026-11-24): `skysort simulate --near-fraction` draws that share of companions within 10 px of the centre (about 12% otherwise). Each was fine-tuned from this model on 20,000 realistic blends (even rows, seed 401) plus 20,000 parametric (seed 402) or clumpy (seed 403) blends at sigma 5 (`--init blend-cfis --lr 2.5e-4 --epochs 2 --patience 2 --seed 6`, about 170 s on this CPU) and scored on the realistic sigma 14.5 test (1,219 near blends). Near fraction 0.5 with parametric blends: near blends 87.9% and false positives 7.5% at threshold 0.5; at the threshold that gives this model's false-positive rate (4.2%; 0.68 for the trial) near blends 82.7% against 79.25%, accuracy 96.5% against 96.35%. Near fraction 0.5 with clumpy blends: 85.1% and 6.1% at 0.5, 81.2% at equal false positives. Near fraction 0.3 with parametric blends: 84.7% and 7.0%, 80.2%. More near blends sharpen the near-blend decision (3.4 points at equal false positives), but every fine-tune raised the false positives on unseen galaxies above 5% at the default threshold, which the validation split of training galaxies (3.8-5.4%) does not show, so no threshold can be set without the test set. By the rule set before the trials (a near-blend gain above 1.5 points with false positives at most 5% at the default threshold) none is shipped.",
    "A trial with the decision set on held-out training galaxies, not shipped (2026-11-24): stage 1 as above (64,000 parametric blends, seed 101, `--epochs 8 --patience 3 --seed 3`, 1,166 s on this CPU); stage 2 on 20,000 realistic blends of half the training galaxies (`--real-galaxies train-fit`, seed 411, `--near-fraction 0.5`) plus 20,000 parametric ones (seed 402, `--near-fraction 0.5`), with the other half (`--real-galaxies train-check`, 10,000 stamps, seed 412) as `--val` and `--false-positive-rate 0.04` (`--lr 5e-4 --epochs 3 --patience 2 --seed 6`, 294 s). The decision moved from 0.5 to 0.88, and on the realistic sigma 14.5 test it gave false positives 3.8% (set to 4% on the check galaxies, so the held-out choice carries over to unseen galaxies), near blends 78.1%, far blends 97.9%, accuracy 95.9%; this model at the same false-positive rate: near blends 77.8%, accuracy 96.4%. Fitting on 25 real galaxies instead of 50 costs what the near blends gain, so it is not shipped.",
    "A trial with sheared real galaxies, not shipped (2026-11-24): the near-fraction 0.5 trial with parametric partners above, repeated with every realistic training galaxy sheared by a random reduced shear up to 0.3 along a random axis, area kept (`skysort simulate --real-shear 0.3`; the same seeds 401 and 402, the same fine-tune `--init blend-cfis --lr 2.5e-4 --epochs 2 --patience 2 --seed 6`, 174 s on this CPU), to test whether more shapes of the 50 training galaxies keep the network from learning them by heart. On the realistic sigma 14.5 test: near blends 88.1% and false positives 7.6% at threshold 0.5 (without the shear 87.9% and 7.5%), accuracy 95.2%; at this model's false-positive rate (4.2%) near blends 82.3% (without the shear 82.7%), at 5% 84.1% (84.25%). Shearing does not lower the false positives on unseen galaxies: what the network takes for companions in them are their lumps, which a shear keeps. Not shipped, by the same rule.",
]

#: The population of SDSS spectroscopic objects in KiDS: half the galaxies SDSS/BOSS/eBOSS
#: targets (cut on SDSS g r i z magnitudes of the same SEDs), 15% of the stars hot (white
#: dwarfs, hot subdwarfs, BHB / A stars), nebular lines on star-forming galaxies.
KIDS_TARGET_POPULATION = ("--population galaxy_target_fraction=0.5 --population hot_star_fraction=0.15 "
                          "--population galaxy_emission_lines=1")
KIDS_TESTS = {
    "kids_test": "--survey kids --kind sources --balanced --n 50000 --seed 12 --image-bands r --stamp-size 32",
    "kids_test_natural": "--survey kids --kind sources --n 20000 --seed 13 --image-bands r --stamp-size 32",
    "kids_test_targets": f"--survey kids --kind sources --balanced --n 50000 --seed 45 --image-bands r --stamp-size 32 {KIDS_TARGET_POPULATION}",
}
#: Training sets of the shipped model and of the ablation models: the field population (stages
#: 1-2) and the spectroscopic-object population (stages 3-4).
KIDS_TRAIN = {
    "kids_train400": "--survey kids --kind sources --balanced --n 400000 --seed 14 --image-bands r --stamp-size 32",
    "kids_train_targets": f"--survey kids --kind sources --balanced --n 400000 --seed 44 --image-bands r --stamp-size 32 {KIDS_TARGET_POPULATION}",
}
#: The shipped schedule, (training set, options) per stage, each stage from the weights of the one
#: before (early stopping in all): stages 1-2 fit every branch on the field population, stages 3-4
#: the photometry branch and the fused head on the spectroscopic-object population.
KIDS_STAGES = (
    ("kids_train400", "--epochs 14 --patience 3 --batch-size 512 --seed 0"),
    ("kids_train400", "--epochs 6 --patience 2 --batch-size 512 --lr 5e-4 --seed 0"),
    ("kids_train_targets", "--epochs 8 --patience 2 --batch-size 512 --seed 0"),
    ("kids_train_targets", "--epochs 4 --patience 2 --batch-size 512 --lr 5e-4 --seed 0"),
)
#: Stages 3-4 keep the image branch of stage 2 (weights and batch-norm statistics).
KIDS_FROZEN_IMAGE_FROM_STAGE = 3
#: Stage-1 option of every model with an image branch (the shipped one and the image ablation).
KIDS_SEEING = "--seeing-input"
#: Class fractions of a high-latitude r <= 23 field (the simulator's natural mix), for ``--prior``.
KIDS_FIELD_PRIOR = "star=0.12,galaxy=0.86,qso=0.02"
#: Card row label -> (test set, evaluation folder, extra ``skysort evaluate`` options).
KIDS_EVALUATIONS = {
    "simulated KiDS test, 50,000 balanced (seed 12)": ("kids_test", "kids_test", ()),
    "simulated KiDS, spectroscopic-object population, 50,000 balanced (seed 45)": ("kids_test_targets", "kids_targets", ()),
    "simulated KiDS, 20,000 natural class mix (seed 13)": ("kids_test_natural", "kids_natural", ()),
    f"the same, `--prior {KIDS_FIELD_PRIOR}`": ("kids_test_natural", "kids_natural_prior", ("--prior", KIDS_FIELD_PRIOR)),
    "the same, `--prior auto` (mix estimated from the predictions)": ("kids_test_natural", "kids_natural_prior_auto", ("--prior", "auto")),
}
#: Ablation row label -> (branches, evaluation folder on kids_test); None: the shipped model.
KIDS_ABLATIONS = {
    "sgq-kids (both)": (None, "kids_test"),
    "image only": ("image", "kids_test_image"),
    "photometry only": ("photometry", "kids_test_photometry"),
}
KIDS_TITLE = "star / galaxy / quasar from r-band stamps + 9-band KiDS/VIKING photometry"
KIDS_ABLATION_HEADING = "Ablations (same code and four-stage schedule: `--branches image|photometry`)"
KIDS_ABLATION_INTRO = ["Held-out simulated KiDS test set (50,000 sources, seed 12, balanced classes):", ""]
KIDS_ABLATION_OUTRO = [
    "", "Both ablations were trained exactly as the shipped model: the same two 400,000-source sets, four-stage schedule "
    "and seed, on this 2-core CPU; the image ablation reads the seeing as the shipped model does, and it is its stage 2: "
    "stages 3-4 keep the image branch fixed, and an image-only model's head belongs to that branch, so they have nothing "
    "to fit. The image-only model separates "
    "point sources from galaxies but cannot tell most stars from quasars: both are point sources in r, "
    "and only quasars with a visible host differ, so its 3-class accuracy stays near 78% whatever the data."]
KIDS_REPRODUCE = [
    "```",
    f"skysort simulate {KIDS_TRAIN['kids_train400']} --out kids_train400.h5",
    f"skysort simulate {KIDS_TRAIN['kids_train_targets']} --out kids_train_targets.h5",
    f"skysort simulate {KIDS_TESTS['kids_test']} --out kids_test.h5",
    f"skysort simulate {KIDS_TESTS['kids_test_targets']} --out kids_test_targets.h5",
    "# stages 1-2: every branch on the field population (up to 14 epochs at lr 2e-3, then up to 6 at lr 5e-4);",
    "# stages 3-4: photometry branch and fused head on the spectroscopic-object population, image branch fixed",
    "# (the same for each ablation, with --branches image|photometry; --seeing-input needs an image branch)",
    *(f"skysort train --task sgq --data {data}.h5" + (f" --init stage{number - 1}.pt" if number > 1 else "")
      + (" --freeze image" if number >= KIDS_FROZEN_IMAGE_FROM_STAGE else "")
      + f" --out {'sgq-kids' if number == len(KIDS_STAGES) else f'stage{number}'}.pt {options}"
      + (f" {KIDS_SEEING}" if number == 1 else "")
      for number, (data, options) in enumerate(KIDS_STAGES, start=1)),
    "skysort evaluate --model sgq-kids.pt --data kids_test.h5 --out eval/kids_test",
    "python benchmarks/sgq_training.py --n 200000 --epochs 5   # training time (GPU when present)",
    "python benchmarks/sgq_reference_classifier.py --train kids_train400.h5 --test kids_test.h5 --concentration r",
    "python benchmarks/sgq_seeing_error.py --model sgq-kids.pt --data kids_test.h5   # accuracy vs the seeing given",
    "```"]
KIDS_NOTES = [
    "Trained and tested on simulations only (COSMOS parametric galaxy shapes, template SEDs); no real KiDS data were available here.",
    "Stages 3-4 (2026-11-24). The model shipped before this one was stage 2: every branch fitted on the field population, "
    "which holds almost none of what a KiDS x SDSS spectroscopic cross-match (the training and test sets of the KiDS DR5 "
    "network) is made of: SDSS/BOSS/eBOSS target galaxies (bright low-redshift main-sample galaxies, luminous red "
    "galaxies at z 0.2-0.8; the cuts are applied to SDSS g r i z magnitudes of the same SEDs), hot stars (white dwarfs, "
    "hot subdwarfs, BHB / A stars) and star-forming galaxies with emission lines. Stages 3-4 refit the photometry branch "
    "and the fused head on 400,000 sources of that population (`kids_train_targets`), the image branch fixed; it is the "
    "population that raised `sgq-sdss` on real SDSS spectroscopic photometry. Against stage 2: spectroscopic-object test "
    "(seed 45) 99.33% against 97.28% (star F1 99.24% against 96.15%: the hot stars), field test (seed 12) 99.17% against "
    "99.22%, a second field test (seed 40) 99.11% against 99.18%, natural mix 99.33% against 99.64% without a prior and "
    "99.87% against 99.87% with `--prior auto`. Two variants were trained on the same sets and scored on the same tests, "
    "and the shipped one chosen among the three on these simulated tests: with `--magnitude-balance` 99.10% (field) / "
    "99.29% (spectroscopic objects); with `--magnitude-balance` and `sgq-sdss`'s magnitude offsets (`--mag-jitter "
    "u=0.3,g=0.1,r=0.05,i=0.05,Z=0.1,Y=0.1,J=0.1,H=0.1,Ks=0.1`) 98.80% / 98.98%, below the 99% goal on the field test, "
    "although those offsets were what carried `sgq-sdss` over the template colours that real stars and galaxies do not "
    "share. Whether stages 3-4 help on real KiDS photometry is not measured: no real KiDS catalogue is here.",
    "The image branch reads each object's r-band seeing (PSF FWHM; `--seeing-input`; trained on 0.55-0.85\"). A point "
    "source's size on the image is the seeing's, so without it a compact galaxy in good seeing and a quasar in bad seeing "
    "look alike, and the r-band seeing of KiDS tiles varies by that much. The model shipped before this one, the same "
    "architecture trained on the same 400,000-source set without the seeing (unseeded), reached 98.77% on the test above "
    "(confusions between galaxies and quasars: 334 of 50,000; with this model: 147), and more data did not "
    "help it (800,000 sources: 98.72%). At prediction the seeing comes from the stamp set: recorded by `skysort cutout`, "
    "measured from the tiles by `skysort predict --tiles`, or else measured from the stamps' own point sources; "
    "`skysort predict` warns when it is unknown or outside the training range.",
    "The seeing given matters (`benchmarks/sgq_seeing_error.py --data kids_test.h5`, the 50,000-source test): with each "
    "object's seeing off by 5% the accuracy is 99.20% (too small) / 98.97% (too large), off by 10% 98.67% / 98.62%; "
    "with the seeing unknown (NaN) 98.50%; with one value (0.70\", the median) for objects whose seeing spans "
    "0.55-0.85\", 96.61%, worse than unknown. A set whose seeing is measured from its stamps gets one value, so it "
    "should hold one tile (or tiles of one seeing); `skysort cutout` and `skysort predict --tiles` record each tile's own.",
    "On a second unseen test (`--seed 40`, 50,000 balanced sources): 99.11%, F1 star 99.06%, galaxy 99.58%, qso 98.69%.",
    "Balanced classes in training and in the main test set; a high-latitude KiDS field at r < 23 holds about 86% galaxies, "
    "12% stars and 2% quasars (galaxies ~3.5e4, stars ~5e3, quasars ~300 per square degree). With the training balance the "
    "model calls too many galaxies quasars in such a field (natural-mix row: quasar F1 85.2%, against 91.5% for stage 2, "
    "whose training held more faint field galaxies); `--prior` with the field's "
    "fractions moves the probabilities to that balance by Bayes' rule and lifts quasar F1 to 96.8% (prior row). The "
    "prior given there is the simulator's own mix, i.e. the correct one; a prior far from the truth helps less or harms. `--prior auto` needs no labels and no prior "
    "knowledge: it estimates the mix from the predictions by expectation-maximisation (Saerens et al. 2002) and found "
    "star 0.122, galaxy 0.857, qso 0.020 here, with nearly the same result as the true mix. The "
    "50,000-source balanced test is scored without a prior.",
    "Most errors involve quasars (taken for stars or galaxies, or the reverse), mostly at r > 22, near the simulated selection limit r = 23.",
    "Trained on the 2-core CPU here (fp32, 2 torch threads): stage 1 ran 14 epochs (846 s of fitting), stage 2 6 epochs "
    "(397 s), stage 3 6 epochs and stage 4 3 epochs (early stopping; 842 s and 416 s while two other trainings shared the "
    "two cores; alone, the `--magnitude-balance` variant's stage 3 fitted 8 epochs on the same set in 188 s). Data and weights are seeded (`--seed 0`): stages 3-4 "
    "run twice from the same stage-2 weights gave identical weights; stages 1-2 were not rerun. The first two commands on "
    "one NVIDIA H100 (bf16 mixed precision, torch 2.11) fitted in 248 s (stage 1 169 s, stopped early after 13 epochs; "
    "stage 2 79 s), to a validation accuracy of 99.18% (stage 2 here: 99.19%); that GPU-trained model is not the one shipped.",
    "An unrelated learner given the same inputs lands at the same place (`benchmarks/sgq_reference_classifier.py --train "
    "kids_train400.h5 --test kids_test.h5 --concentration r`, scikit-learn gradient-boosted trees trained on the same "
    "400,000 sources): 97.08% from the photometry (the network's photometry ablation: 97.10% after stage 2, 96.56% after stages 3-4 on the other population), 98.07% with the r-band "
    "concentration index beside it (flux within 0.5\" over flux within 1.2\"), and 99.05% with the concentration and each "
    "object's seeing (this model: 99.17%). The seeing is what lifts both above 99%.",
]

SDSS_TESTS = {"sdss_test": "--survey sdss --kind sources --balanced --n 20000 --seed 22 --stamp-size 24"}
SDSS_EVALUATIONS = {
    "simulated SDSS test, 20,000 balanced (seed 22)": ("sdss_test", "sdss_test"),
    f"real SDSS field {SDSS_FIELD} (images only)": (f"sdss_{SDSS_FIELD}", "sdss_field"),
}
SDSS_SPECPHOT_LABEL = "real SDSS DR17 spectroscopic objects (photometry only)"
SDSS_SPECPHOT_FILES = ("dr17_first9999.csv", "dr17_random10pct.csv")
SDSS_TITLE = "star / galaxy / quasar from ugriz stamps + ugriz SDSS photometry"
SDSS_SPECPHOT_AFTER = [
    "", "For reference, a gradient-boosting classifier trained on the real table's colours and r magnitude reaches 87.6% "
    "on the same held-out half when trained on the same tuning half, and 87.7% (+- 0.4%) in 5-fold cross-validation "
    "(`python benchmarks/specphot_reference_classifier.py`). Fine-tuning changes only the photometry branch and its head "
    "(`skysort.tasks.sgq.fine_tune_photometry`); the fine-tuned model is not shipped.", "",
    "```python",
    "from skysort.tasks.sgq import evaluate_sgq_specphot",
    "evaluate_sgq_specphot('sgq-sdss', ['.../dr17_first9999.csv', '.../dr17_random10pct.csv'], 'eval/specphot', seed=0)",
    "```"]
SDSS_FIELD_TRUTH = "SDSS photometric type"
SDSS_FIELD_CODE = [
    "```",
    f"skysort cutout --images 'sdss_frames/{SDSS_FIELD}/frame-*-*.fits.bz2' --catalog sdss_frames/{SDSS_FIELD}/objects.csv --size 64 --out field.h5",
    "skysort evaluate --model sgq-sdss --data field.h5 --out eval/sdss_field",
    "```"]
SDSS_REPRODUCE = [
    "```",
    "# the sdss preset: r seeing 0.8-2.0\" in 17 steps of two PSFs each, Moffat wings beta 2.2-5.0, the sky noise of real frames scaled",
    "# by 0.8-1.8 per object and band, field stars at 0.5-150 per arcmin^2 around each object (sdss.yaml)",
    "# image branch (stage 1): field population; the network also reads each object's r-band seeing",
    "skysort simulate --survey sdss --kind sources --balanced --n 200000 --seed 21 --stamp-size 24 --out sdss_train.h5",
    "skysort simulate --survey sdss --kind sources --balanced --n 20000 --seed 22 --stamp-size 24 --out sdss_test.h5",
    "skysort train --task sgq --data sdss_train.h5 --out stage1.pt --image-bands u,g,r,i,z --seeing-input --magnitude-balance --epochs 5 --patience 2 --batch-size 512",
    "# photometry branch and fused head (stages 3-4): half field galaxies, half SDSS spectroscopic targets; 15% of the stars from",
    "# the hot component (white dwarfs, hot subdwarfs, BHB / A stars); galaxies with nebular emission lines; random magnitude",
    "# offsets in training; image branch kept fixed",
    "skysort simulate --survey sdss --kind sources --balanced --n 200000 --seed 21 --stamp-size 24 --population galaxy_target_fraction=0.5 --population hot_star_fraction=0.15 --population galaxy_emission_lines=1 --out sdss_train_lines.h5",
    "skysort train --task sgq --data sdss_train_lines.h5 --init stage1.pt --freeze image --out stage3.pt --magnitude-balance --epochs 8 --patience 2 --batch-size 512 --mag-jitter u=0.3,g=0.1,r=0.05,i=0.05,z=0.1",
    "skysort train --task sgq --data sdss_train_lines.h5 --init stage3.pt --freeze image --out sgq-sdss.pt --magnitude-balance --epochs 4 --patience 2 --batch-size 512 --lr 5e-4 --mag-jitter u=0.3,g=0.1,r=0.05,i=0.05,z=0.1",
    "skysort evaluate --model sgq-sdss.pt --data sdss_test.h5 --out eval/sdss_test",
    "python benchmarks/seeing_robustness.py --models sgq-sdss   # the real field blurred to worse seeing",
    "```",
    "",
    "Stage 4 is shipped because it has the lower validation loss on simulations (validation magnitudes carry no offsets). "
    "The image branch is the first stage alone: the earlier recipe continued it for 4 epochs at lr 5e-4 (stage 2), which "
    "lowers the simulated validation loss but makes the image branch call real stars galaxies. The check that decided it uses "
    "no label of the test field: on the Galactic-plane frame 005405-6-0099 (b = -1 deg, nearly every source a star; the 300 "
    "SEP detections of `tests/test_background.py`) the stage-1 model then shipped called 16% of the sources galaxies and "
    "its stage 2 52% (for an earlier trial with the atmosphere-only PSF wings, 43% and 87%). The labelled field 003918-3-0213 "
    "agreed (r < 21: 96.4% after stage 1, 92.5% after stage 2); it was looked at first, so the choice is not blind to it. "
    "The recipe was kept as it was when the simulator changed (sky noise and field stars, then PSF wings; below)."]
SDSS_NOTES = [
    "PSF change of 2026-11-23 (this model): the `sdss` preset drew Moffat indices 2.2-3.5 (the wings fitted on stars of real "
    "frames at 0.8-1.6\" seeing), one PSF per seeing step; it now draws 2.2-5.0, up to the atmosphere's alone (4.765), with two "
    "PSFs per step, so that the wings vary at a given FWHM. Blurring the labelled field to worse seeing makes its PSF more like "
    "the atmosphere's (fitted index 3.9-5.1 in r, against 2.5 as it is), as worse atmospheric seeing would with fixed optical "
    "wings, and the model trained on broad wings alone called compact galaxies point sources there. Retrained with the recipe "
    "above, unchanged; against the model shipped before it (`benchmarks/presets/sdss_v3.yaml`): field blurred to 1.36 / 1.65 "
    "/ 1.95\" 95.2% / 94.0% / 91.9% against 94.0% / 90.0% / 87.9% (r < 21); the field as it is 97.2% (245 of 252) against "
    "96.8% (244; all objects 83.5% against 84.8%); Galactic-plane frame 005405-6-0099, sources called galaxies, 12% against "
    "13%; simulated test of the new preset 83.8% against 81.4% (of the earlier preset, seed 22: 84.1% against 82.6%); real "
    "spectroscopic photometry (5a) 81.5% against 81.6%, fine-tuned 87.6% against 87.8% (the photometry does not depend on "
    "the PSF: that is the spread between trainings). Earlier trainings did not seed the network's initial weights, "
    "so two runs of the same commands differed; this one does (stage 1 run twice gave identical weights). Three trials "
    "before it, each scored on the same real field and plane frame (field as it is / 1.36 / 1.65 / 1.95\", plane share): "
    "the same commands unseeded, twice, 96.4% / 95.6% / 93.2% / 91.1%, 15% and 96.8% / 95.2% / 94.4% / 93.1%, 5.7%; the "
    "wider range with one PSF per step, 96.0% / 95.6% / 94.0% / 92.7%, 22%. So the gain in worse seeing repeats, while the "
    "plane figure moves by ten points or more between trainings. The shipped model is the seeded run of the card's "
    "commands, not the best of the trials.",
    "Noise change of 2026-11-23 (the model shipped before this one): the `sdss` preset had derived its sky noise from SDSS's 95% completeness "
    "limits, which made simulated g, r and i images 1.6-2.5 times noisier than real frames; it now takes the background rms "
    "of the real frames of the unlabelled field 007264-3-0111, scaled per object and band by 0.8-1.8 (the spread of real "
    "frames), and scatters field stars around each object (0.5-150 per arcmin^2, high latitude to the Galactic plane). "
    "The model was retrained with the recipe above, unchanged. Against the model shipped before it (the same recipe on the "
    "earlier preset, `benchmarks/presets/sdss_v2.yaml`): real field r < 21 96.8% (244 of 252) against 96.4% (243), all "
    "objects 84.8% against 81.5%; real spectroscopic photometry (5a) 81.6% against 81.1%, fine-tuned 87.8% against 87.6%; "
    "simulated test of the new preset 82.6% against 80.1%; Galactic-plane frame 005405-6-0099, sources called galaxies, 13% "
    "against 16%. Worse: on the real field blurred to worse seeing (below) it agrees less, because it calls more compact "
    "galaxies point sources (at 1.65\": 18 of the 132 galaxies with r < 21, against 4; stars called galaxies 7 of 117, "
    "against 10). The stage-1 trials on the way, each scored on the real field (r < 21 / all) and the Galactic-plane "
    "frame: real noise alone 96.8% / 84.4%, 34% galaxies; with the noise spread 96.0% / 81.8%, 30%; with field stars too "
    "96.8% / 84.4%, 20%, and 96.8% / 84.8%, 13% for the model then shipped, whose field stars differ only in how their "
    "colours are sampled (a fixed sample of the preset's stars instead of the stars of each simulated block), so the "
    "plane figure moves by several points between nearly identical trainings. A model trained on empty stamps reads "
    "the light of neighbours on a crowded frame as extended structure; the earlier preset's excess noise had hidden that.",
    "Sim-to-real on spectroscopic photometry misses the 85% goal: 81.5% (81.6% and 81.1% for the two models shipped before, "
    "67.2% with the field population and Pogson magnitudes). What made the difference, each measured on the whole real table with earlier "
    "models: (1) SDSS catalogue magnitudes are asinh magnitudes, finite "
    "for faint and negative fluxes (real u reaches 24-27 for a tenth of the objects), and the simulation now writes them too; "
    "(2) half of the training galaxies come from the SDSS spectroscopic-target component (main sample, LOWZ, CMASS, eBOSS LRG cuts), "
    "so the luminous red galaxies at z 0.3-0.8 that dominate the real galaxies at r 20-21.5 are in the training set (1 + 2: 77.9%); "
    "(3) random Gaussian magnitude offsets while training (sigma u 0.3, g 0.1, r 0.05, i 0.05, z 0.1 mag): the Pickles F-K dwarfs are "
    "0.15-0.25 mag redder in u - g than the SDSS stellar locus at the same g - r, and the COSMOS red-sequence templates 0.2 mag "
    "bluer than real z < 0.15 galaxies, so a classifier trained on sharp simulated loci leans on u - g differences that real data "
    "do not have (79.9%); (4) 15% of the training stars from the hot component (80.8%); (5) nebular emission lines on the "
    "star-forming galaxy templates (`galaxy_emission_lines=1`, the Ilbert et al. 2009 recipe, not tuned; 81.0%, galaxies at "
    "z > 0.7 66% -> 68% correct); (6) catalogue errors from the real frames' noise, 2.2x smaller in g and i than before "
    "(81.6%; 82.4% for the trial with the other field-star colour sampling, so within the spread between trainings). "
    "Step 5 is within the spread between repeated trainings (0.3-0.8 points); it is kept "
    "because real galaxies have lines. A further trial, stages 3-4 retrained on a set with the metallicity-dependent u - g of "
    "F/G dwarfs (`--population star_uv_excess=1`), gave 81.04% (fine-tuned 87.16%) with the earlier preset: no change, so it is not used.",
    "Selection caveat: the offset widths and the hot-star share (0.15) were not fitted, but they were chosen after trying three "
    "offset settings and two shares (0.1, 0.2) with a gradient-boosting stand-in for the photometry branch scored on this same "
    "real table (sigma_u 0.1-0.4 gave 78.9-79.9%, shares 0.1 / 0.2 gave +0.7 / +1.0 points), so 81.5% is slightly optimistic as an "
    "estimate for other spectroscopic samples.",
    "The real table is read with the `sdss-specphot` preset, which puts the SDSS magnitudes on AB (u - 0.04, z + 0.02) as the "
    "simulation is; this alone costs an earlier model 0.3 points (77.9% -> 77.5%).",
    "Stars are still the weak class (F1 70%). Measured with an earlier model: 445 real stars with catalogue u - g < 0.7 (white dwarfs, hot subdwarfs, A/BHB stars, "
    "targeted by SEGUE and as quasar candidates) are 29% correct (11% before the hot component; the Pickles O/B dwarfs stand in for "
    "white-dwarf continua, there is no white-dwarf template); F/G stars (u - g 0.7-1.5) are 85% correct (67% before).",
    "Where the gap to a classifier trained on real labels lies (this model; gradient-boosted trees of `specphot_reference_classifier.py`, "
    "5-fold cross-validated predictions pooled, 87.6%): stars and quasars are classified about as well as by the trees (stars 2,900 "
    "against 2,943 of 3,935 correct, quasars 2,817 against 2,846 of 3,599), galaxies far worse (9,750 against 10,841 of "
    "11,449; 1,048 called stars against 296). Of the 4,172 real galaxies at r < 19, 415 are called stars: low-redshift "
    "star-forming galaxies (median z 0.07) whose colours lie within 0.1 mag of F/G stars (median u - g 1.21, g - r 0.48, "
    "r - i 0.28, i - z 0.14 against 1.22, 0.49, 0.18, 0.06 for the real stars at r < 19 that it calls stars), a difference "
    "of the size of the magnitude offsets added in training. Part of the trees' advantage is the real class mix they learn "
    "(60% galaxies; the model assumes thirds, `prior=\"auto\"` above).",
    "Fine-tuned on half of the real table the photometry branch reaches 87.6% on the other half, short "
    "of the 90% goal and level with a gradient-boosting classifier trained on the same half's real colours and scored "
    "on the same other half (87.6%): the goal asks more than the five magnitudes hold for a learner trained on them.",
    "Real field: 97.2% agreement for r < 21 (245 of 252); faint objects (r > 22 in a 6\" aperture) agree far less. The "
    "stamps are cut with the sky background removed and the seeing measured (the `skysort cutout` defaults; 0.97\" in r "
    "here, Moffat index 2.5); a stamp set without a seeing value has it measured from its own point sources (0.98\" "
    "from this field's stamps alone, 97.2% at r < 21), and where that fails `skysort predict` warns that the model is "
    "less accurate (79.0% at r < 21 on this field with the seeing hidden). The background step exists for crowded fields: on the unlabelled Galactic-plane frame "
    "005405-6-0099 (b = -1 deg, almost every source a star, on a pedestal of unresolved starlight about the noise rms; "
    "95% of the 300 random SEP detections (10 sigma) have another source within 6\"), 12% are called galaxies (an "
    "earlier model: 80% when the frames were cut without removing the background; `tests/test_background.py`). Stages "
    "3-4 keep the image branch fixed. The 12 disagreements of an earlier model at r < 21, inspected by eye, were 3 SDSS "
    "stars on the scattered-light arcs of a bright star, 1 saturated star with bleed trails (their 6\" aperture "
    "magnitudes, 14-18, are mostly that light), 1 close pair and 7 compact galaxies at r 20-21 called point sources. "
    "`skysort cutout` sets no flag for saturated pixels or a bright neighbour.",
    "Seeing (`python benchmarks/seeing_robustness.py --models sgq-sdss,OLD.pt`: the real field blurred to worse seeing, "
    "noise restored, seeing measured again), agreement for r < 21 at r seeing 0.97\" (the field) / 1.36\" / 1.67\" / "
    "1.98\": 97.2% / 95.2% / 93.2% / 91.5%; the errors that grow are compact galaxies called point sources (the "
    "field's labels were measured at 0.97\"). The model shipped before it (Moffat index 2.2-3.5 only): 96.8% / 94.4% / 90.0% "
    "/ 87.4%; the one before that (noisier earlier preset): 96.4% / 94.4% / 95.2% / 93.9%; an earlier one (trained at "
    "1.2-1.6\" with atmosphere-only PSF wings, not told the seeing): 95.2% / 92.5% / 73.9% / 58.3%, because it took stars in "
    "worse seeing for galaxies. The model reads each object's r-band FWHM (the seeing of its tile, measured by `skysort "
    "cutout` or `skysort predict --tiles`) and was trained on 0.8-2.0\" with Moffat wings of index 2.2-5.0. With the "
    "seeing measured from the stamps alone instead of the frames (the benchmark's \"from the stamps\" rows: 0.98\" / 1.36\" / 1.68\" / 1.99\") 97.2% / 95.2% / 92.8% / 91.1%; with the seeing hidden (its last row) the field as it is gives 79.0% (the models before it: 77.4%, 89.3%). "
    "These figures are from the seeing fit of 2026-11-25 (a smooth Moffat fit; the earlier one rounded the profile's "
    "parameters to a grid). The dated notes above were measured with the earlier fit, which put the blurred copies at "
    "1.65\" / 1.95\" (this model there: 94.0% / 91.9%); the field as it is, the hidden-seeing row and the Galactic-plane "
    "frame give the same figures with both.",
    "Simulated SDSS objects reach r = 22.5, at the 5-sigma depths (r 22.61, z 20.77 at the nominal noise); at the "
    "faint end colours are noise-dominated, which is why the simulated test accuracy is far below that of brighter real "
    "spectroscopic objects.",
    "Field stars are point sources with stellar colours only; real neighbours at high latitude are mostly galaxies. Catalogue "
    "photometry of simulated objects has the nominal errors whatever the stamp's noise.",
    "The real-field objects have no catalogue photometry, so (b) tests the image branch's head only.",
    "The SDSS spectroscopic magnitudes are not dereddened, like the simulated ones (mean E(B-V) 0.03); the real table has no errors.",
    "Trained for 5 (image branch) and 5 + 4 epochs (photometry branch and fused head; early stopping) on a 2-core CPU, "
    "not to convergence.",
]

#: The sdss preset this model was trained on; the `sdss` preset has since widened its PSF wings.
POINTSOURCE_SURVEY = "benchmarks/presets/sdss_v3.yaml"
POINTSOURCE_TESTS = {
    "test": f"--survey {POINTSOURCE_SURVEY} --kind pointsources --n 20000 --balanced --seed 2 --stamp-size 20 --mag-max 22",
    # The same objects with the stellar-metallicity model the shipped model was trained with.
    "test_metal": f"--survey {POINTSOURCE_SURVEY} --kind pointsources --n 20000 --balanced --seed 2 --stamp-size 20 --mag-max 22 "
                  "--population star_uv_excess=1",
}
POINTSOURCE_TRAINING = (f"skysort simulate --survey {POINTSOURCE_SURVEY} --kind pointsources --n 80000 --balanced --seed 1 --stamp-size 20 "
                        "--mag-max 22 --population star_uv_excess=1 --out train_metal.h5")
POINTSOURCE_DESCRIPTION = (
    f"20,000 simulated SDSS point sources (`skysort simulate --survey {POINTSOURCE_SURVEY} --kind pointsources --n 20000 --balanced --seed 2 "
    "--stamp-size 20 --mag-max 22`; seed unseen in training): 10,113 stars, 9,887 quasars, r <= 22.")
#: Real galaxy spectra (out of the model's classes) whose encoder classes the card reports.
POINTSOURCE_GALAXY_SPECTRA = ("spectra/sdss_real/spec-0266-51602-0013.fits", "spectra/sdss_real/spec-0266-51602-0107.fits")
#: Real spectra classified by the spectral encoder: (glob under the shared data folder, true class).
POINTSOURCE_SPECTRA = (("seds/stars_indo_us/*.fits", "star"), ("spectra/sdss_real/spec-0332-52367-0639.fits", "qso"))
POINTSOURCE_NOTES = [
    f"Training set: `{POINTSOURCE_TRAINING}`, i.e. F/G dwarfs with the u - g of a halo or thick-disc metallicity "
    "(Ivezic et al. 2008; `skysort.simulate.population`).",
    "Trained on the `sdss` preset as it was after the noise change of 2026-11-23 (below), kept as "
    f"`{POINTSOURCE_SURVEY}`. The preset has since widened its PSF wings (Moffat index 2.2-5.0 with two PSFs per seeing "
    "step instead of 2.2-3.5 with one; see the sgq-sdss card). Retrained on it with the same commands, the model reached "
    "F1 0.899 and accuracy 0.898 on that preset's test set (seed 2; this model there: 0.892, 0.897), but on the real field "
    "below it called 90% of the 117 SDSS stars at r < 21 stars against 95%, and 27% of the 26 halo turn-off stars quasars "
    "against 8%. It was not shipped: the real field counts for more than one point of simulated F1, though one training "
    "cannot separate the preset's effect from the spread between trainings.",
    "Noise change of 2026-11-23 (this model): the `sdss` preset had derived its sky noise from SDSS's 95% completeness "
    "limits, 1.6-2.5 times the noise of real frames in g, r and i; it now takes the real frames' noise, scales it by 0.8-1.8 "
    "per object and band, and scatters field stars (0.5-150 per arcmin^2) around each object. The model was retrained with "
    "the same command. The test set above is drawn with that preset (same seed, same objects); on it the model shipped "
    "before (trained on `benchmarks/presets/sdss_v1.yaml`) reaches F1 0.872 and accuracy 0.879 (this model: 0.887, 0.892). "
    "On the real field below, the earlier model called 102 of the 117 SDSS stars at r < 21 stars, this one 111.",
    "Targets of the issue missed on this simulation: F1 about 0.89 (target 0.98) and no error-rate reduction against the "
    "image-only CNN (target 40%). The data hold little more: a gradient-boosted classifier (scikit-learn "
    "HistGradientBoostingClassifier, 300 iterations) on the catalogue's noisy ugriz fluxes (flux_obs_*: nominal noise, no "
    "neighbours, so easier than the stamps), trained on the training set, reaches F1 0.909 and accuracy 0.912 on this test "
    "set (0.846 at r 21-22). Most objects are faint (r 21-22 holds 43% of the test set), where colours are noisy, and "
    "quasars at z 2.5-3.5 sit on the stellar locus. Real photometry is no more telling: the same learner in 5-fold cross-validation on the catalogue ugriz magnitudes of the 7,200 real SDSS DR17 spectroscopic stars and quasars at r <= 22 reaches F1 0.867 and accuracy 0.874 (F1 0.839 at r 21-22; `python benchmarks/specphot_reference_classifier.py --point-sources`). Those stars were targeted, many as quasar candidates, so they are harder than the sky's stars, but the comparison says that F1 0.98 needs more than ugriz colours of objects this faint, in simulation or not.",
    "The spectral route itself works: the encoder is perfect on true spectra and the fusion head fed true-spectrum features "
    "reaches F1 1.000; generated features reach a mean cosine similarity of 0.85 with the true ones, but carry essentially "
    "the class evidence present in the image. Here the fusion loses quasar completeness at z > 2.5 against the image-only "
    "CNN (per-redshift table) and gains it back in purity.",
    "Trained and tested on simulations only (sdss preset: Moffat PSFs, Gaussian sky noise, field stars, Pickles stars, "
    "composite quasars with hosts below z 0.7). Inputs are ugriz stamps in nanomaggies at 0.396\"/px centred on the source, "
    "at least 20x20 px (larger stamps are centre-cropped). The model does not read the seeing; `skysort predict` warns "
    "when a stamp set's seeing lies outside its training range (recorded in the model file as `psf_fwhm_range`).",
    "The spectral encoder is trained on the set's spectra plus noisy spectra of all 131 Pickles templates (8 per S/N level 5, 10, "
    "30), because faint high-latitude samples have no O/B stars; in a trial without them (a smaller encoder trained on 7,200 "
    "spectra) the real B0.5III spectrum was called a quasar. Real spectra are resampled flux-conservingly onto the SDSS vacuum "
    "log-lambda grid (Indo-US air wavelengths converted to vacuum; input pixels sharing a grid pixel weighted by their inverse "
    "variance where the file gives errors) with skysort.data.spectra.read_real_spectrum / skysort.tasks.pointsource."
    "encode_real_spectrum.",
    "The encoder was trained on spectra covering at least 80% of the grid (up to 10% lost at each end). A real spectrum covering less is outside that: the real quasar spec-0332-52367-0639 with its light red of 7000 A masked (68% of the grid, H-alpha gone, H-beta and [O III] kept) is called a star with p_qso 0.000. encode_real_spectrum then returns reliable = False and warns.",
    "Quasar spectra the simulator never draws (`python benchmarks/pointsource_encoder_templates.py`; the simulated quasars all "
    "come from one composite): the mean spectra of SDSS DR16Q quasars (DESI redrock, z < 1.7 and z > 1.3), SDSS's own and "
    "Brodzeller et al.'s eigenspectra, Yip et al.'s and Cristiani & Vio's composites, redshifted 0.1-4.5 with intergalactic "
    "absorption (51 template-redshift pairs covering 80% of the grid): all 51 called quasars at S/N 10 per pixel, 38 at S/N 2 "
    "(SDSS spectra of r = 21-22 sources hold 2-5). Missed at each S/N tried (10, 5, 3, 2): LePhare's dust-reddened quasar template at z >= 1 "
    "(its continuum falls tenfold blueward of 3000 A) and the VVDS faint-AGN composite at z 0.1-0.3 (host light, weak "
    "H-alpha). The 31 Indo-US stars and the SDSS quasar degraded to S/N 2 are all still called correctly.",
    "Trial, not shipped: the encoder trained with spectra degraded to S/N 2-10 and up to 30% of the grid lost at each end "
    "(`train_pointsource_model`'s defaults since; recorded in the model file as `encoder_augmentation`), otherwise the card's "
    "command on the same training set, 484 s on a 2-core CPU. Its encoder calls all 51 template quasars above quasars at S/N 2 "
    "as well, the real quasar degraded with noise shaped by its own error array (sky-line residuals included) a quasar in 5 "
    "of 5 draws at S/N 1 (this model: 0 of 5; at S/N 2, 5 and 4), and the real quasar with its spectrum red of 7000 or "
    "6000 A masked a quasar; the 31 Indo-US stars stay stars, "
    "except K4III with its spectrum blue of 5000 A masked. Test set above: F1 0.898, accuracy 0.899 (this model 0.887, 0.892). "
    "Real field below: 90% of the 117 stars at r < 21 called stars, against 95%, so it was not shipped. A control run of the "
    "same code without the new augmentation (10% lost at each end, no added noise) calls 91% of them stars (F1 0.896; at S/N "
    "2 it calls 33 of the 51 template quasars quasars), and the earlier retrain on the wider-PSF preset 90%: retraining with "
    "today's code loses those stars with or without the augmentation, so the augmentation stays the default and this model "
    "stays shipped until a retrain keeps the real field.",
    "A second trial, not shipped: the same training (augmented encoder) on a set whose turn-off stars take their halo "
    "membership from the Juric et al. (2008) Galactic model along latitude 50 deg (`--population star_uv_excess=1 "
    "--population star_halo_latitude=50`: 93% of the training set's F/G dwarfs at g - r 0.2-0.4 and r > 19.5 metal-poor, [Fe/H] < -1, against 69%), 491 s. "
    "Test set above: F1 0.896, accuracy 0.894 (image-only 0.892). Real field: 106 of the 117 stars at r < 21 called stars, 6 of "
    "the 26 turn-off stars quasars (this model 111 and 2; the first trial 105 and 7): a metal-poorer halo in training does "
    "not bring the real turn-off stars back. Not shipped, by the rule set before it (at least 109 of the 117 stars, F1 at "
    "least this model's).",
]

# ------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------


class Runner:
    """Runs ``skysort`` commands in this interpreter's environment, skipping finished outputs."""

    def __init__(self, data: Path, n: int | None, workers: int, force: bool, dry_run: bool):
        self.data, self.n, self.workers, self.force, self.dry_run = data, n, workers, force, dry_run

    def done(self, output: Path) -> bool:
        if output.exists() and not self.force:
            print(f"  exists, skipped: {output}")
            return True
        return False

    def skysort(self, args: str, output: Path) -> None:
        """Run ``skysort ARGS`` unless ``output`` exists."""
        if self.done(output):
            return
        print(f"  skysort {args}", flush=True)
        if self.dry_run:
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "skysort.cli", *shlex.split(args), "--quiet"], check=True)
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)

    def simulate(self, folder: Path, tests: dict[str, str], workers: bool = True) -> None:
        for stem, options in tests.items():
            if self.n is not None:
                options = _replace_option(options, "--n", str(self.n))
            extra = f" --workers {self.workers}" if workers else ""
            out = folder / f"{stem}.h5"
            self.skysort(f"simulate {options}{extra} --out {out}", out)

    def evaluate(self, model: str, data: Path, out: Path, *options: str) -> None:
        extra = "".join(f" {option}" for option in options)
        self.skysort(f"evaluate --model {model} --data {data} --out {out}{extra}", out / "metrics.json")


def _replace_option(options: str, name: str, value: str) -> str:
    words = shlex.split(options)
    words[words.index(name) + 1] = value
    return " ".join(words)


def blend_cfis(run: Runner, steps: set[str], out: Path) -> None:
    from skysort.data.stampset import StampSet, concatenate
    from skysort.tasks.blend import write_model_card

    folder = run.data / "blend"
    if "simulate" in steps:
        run.simulate(folder, {**BLEND_TRAINING, **BLEND_TESTS})
    if "train" in steps:
        stage1, stage2 = folder / "blend-cfis-stage1.pt", folder / "blend-cfis.pt"
        run.skysort(f"train --task blend --data {folder / 'blend_train_param_s5.h5'} --out {stage1} {BLEND_STAGE1}", stage1)
        mixed = folder / "blend_train_mixed_s5.h5"
        if not run.dry_run and (not mixed.exists() or run.force):
            concatenate([StampSet.open(folder / "blend_train_real_s5.h5"),
                         StampSet.open(folder / "blend_train_param_s5.h5")[:BLEND_STAGE2_PARAMETRIC_ROWS]], mixed)
        run.skysort(f"train --task blend --data {mixed} --out {stage2} --init {stage1} {BLEND_STAGE2}", stage2)
    if "evaluate" in steps:
        for test, evaluation in BLEND_EVALUATIONS.values():
            extra = [] if evaluation == BLEND_SEP_EVALUATION else ["--no-sep"]
            run.evaluate("blend-cfis", folder / f"{test}.h5", folder / evaluation, *extra)
    if "card" in steps:
        evaluations = {label: folder / evaluation / "metrics.json" for label, (_, evaluation) in BLEND_EVALUATIONS.items()}
        print("  card", write_model_card("blend-cfis", evaluations, out / "blend-cfis.md", notes=BLEND_NOTES))


def _ablation_model(folder: Path, branches: str) -> Path:
    return folder / "models" / f"sgq-kids-{branches}.pt"


def sgq_kids(run: Runner, steps: set[str], out: Path) -> None:
    from skysort.tasks.sgq import ablation_table, magnitude_table, purity_completeness_table, write_model_card

    folder = run.data / "sgq"
    evaluations = folder / "eval"
    if "simulate" in steps:
        run.simulate(folder, KIDS_TESTS)
    if "train" in steps:
        run.simulate(folder, KIDS_TRAIN)
        stages = KIDS_STAGES if run.n is None else tuple((data, _replace_option(s, "--epochs", "1")) for data, s in KIDS_STAGES)
        for branches, _ in KIDS_ABLATIONS.values():
            if branches is None:
                continue
            final = _ablation_model(folder, branches)
            if run.done(final):
                continue
            # Stages 3-4 keep the image branch fixed, and an image-only model's head is part of
            # that branch: they would fit nothing, so the image ablation is its stage 2.
            own = stages if branches == "photometry" else stages[:KIDS_FROZEN_IMAGE_FROM_STAGE - 1]
            previous = None
            for number, (data, options) in enumerate(own, start=1):
                model = final if number == len(own) else final.with_name(f"{final.stem}-stage{number}.pt")
                command = f"train --task sgq --branches {branches} --data {folder / data}.h5 --out {model} {options}"
                if previous is None:
                    # The seeing is an input of the image branch; later stages keep the inputs of stage 1.
                    command += f" {KIDS_SEEING}" if branches != "photometry" else ""
                else:
                    command += f" --init {previous}"
                run.skysort(command, model)
                previous = model
    if "evaluate" in steps:
        for test, evaluation, options in KIDS_EVALUATIONS.values():
            run.evaluate("sgq-kids", folder / f"{test}.h5", evaluations / evaluation, *options)
        for branches, evaluation in KIDS_ABLATIONS.values():
            if branches is not None:
                run.evaluate(str(_ablation_model(folder, branches)), folder / "kids_test.h5", evaluations / evaluation)
    if "card" in steps:
        main_test = evaluations / "kids_test" / "metrics.json"
        sections = {
            KIDS_ABLATION_HEADING: [*KIDS_ABLATION_INTRO,
                                    *ablation_table({label: evaluations / evaluation / "metrics.json"
                                                     for label, (_, evaluation) in KIDS_ABLATIONS.items()}),
                                    *KIDS_ABLATION_OUTRO],
            "Accuracy vs r magnitude (50,000-source test)": magnitude_table(main_test),
            "Purity and completeness against the probability threshold (50,000-source test)": purity_completeness_table(main_test),
            "Reproduce": KIDS_REPRODUCE,
        }
        rows = {label: evaluations / evaluation / "metrics.json" for label, (_, evaluation, _) in KIDS_EVALUATIONS.items()}
        print("  card", write_model_card("sgq-kids", rows, out / "sgq-kids.md", title=KIDS_TITLE, sections=sections, notes=KIDS_NOTES))


def cut_sdss_field(run: Runner, field: Path) -> None:
    """64 px ugriz stamps of the labelled real SDSS field (``skysort cutout``, background removed)."""
    from skysort.simulate.presets import shared_data_dir

    frames = shared_data_dir() / "surveys" / "sdss_frames" / SDSS_FIELD
    run.skysort(f"cutout --images '{frames}/frame-*-*.fits.bz2' --catalog {frames / 'objects.csv'} --size 64 --out {field}", field)


def _colours(stamps, indices=None) -> dict[str, np.ndarray]:
    """``r`` (6" aperture) and ``u-g``, ``g-r`` (4" apertures) of ugriz stamps, AB."""
    from skysort.evaluation.magnitudes import aperture_magnitudes

    images = stamps.read_images(indices)
    bands = list(stamps.meta.bands)

    def mag(band, diameter):
        return aperture_magnitudes(images[:, bands.index(band)], stamps.meta.zero_points[band], stamps.meta.pixel_scale, diameter)

    u, g, r4 = (mag(b, 4.0) for b in "ugr")
    return {"r": mag("r", 6.0), "u-g": u - g, "g-r": g - r4}


def metal_test_note(metrics_path: Path) -> str:
    """The point-source model on the test set drawn with the stellar-metallicity model."""
    m = json.loads(metrics_path.read_text())
    return (f"On the same 20,000 test objects drawn with the stellar-metallicity model of the training set "
            f"(`skysort simulate {POINTSOURCE_TESTS['test_metal']}`): F1 {m['f1']:.4f}, accuracy {m['accuracy']:.4f}, "
            f"image-only F1 {m['f1_image_only']:.4f}, error-rate reduction {m['error_rate_reduction']:.3f}. The metal-poor halo "
            "stars sit closer to the quasars, so this test is harder than the one above.")


#: Point sources at r < 21 and b = 56 deg: quasars are of order 1% (the real-field note's prior).
FIELD_POINT_SOURCE_PRIOR = {"star": 0.99, "qso": 0.01}


def real_field_star_note(model: str, field: Path, simulated: Path, simulated_metal: Path, metrics_path: Path) -> str:
    """How a star / quasar model classifies the SDSS photometric stars of the real field, by r,
    and where real blue stars sit against the simulated stellar locus."""
    from skysort.data.stampset import StampSet
    from skysort.inference.predictor import ClassDecision, load_predictor, predict_stampset

    predictor = load_predictor(model, "cpu")
    with StampSet.open(field) as stamps:
        table = predict_stampset(predictor, stamps)
        with_prior = predict_stampset(predictor, stamps, decision=ClassDecision(prior=FIELD_POINT_SOURCE_PRIOR))
        estimated = predict_stampset(predictor, stamps, decision=ClassDecision(prior="auto"))
        real = _colours(stamps)
        star = stamps.column("label") == "star"
    with StampSet.open(simulated) as stamps:
        sim = _colours(stamps, np.flatnonzero(stamps.column("label") == "star"))
    with StampSet.open(simulated_metal) as stamps:
        sim_metal = _colours(stamps, np.flatnonzero(stamps.column("label") == "star"))
    errors = {(b["mag_min"], b["mag_max"]): 1 - b["accuracy"] for b in json.loads(metrics_path.read_text())["by_magnitude"]}
    r = real["r"]
    called = np.asarray(table["class"]) == "star"
    blue_real = star & (r < 21) & (real["g-r"] >= 0.2) & (real["g-r"] < 0.4)
    blue_sim = (sim["r"] < 21) & (sim["g-r"] >= 0.2) & (sim["g-r"] < 0.4)
    blue_metal = (sim_metal["r"] < 21) & (sim_metal["g-r"] >= 0.2) & (sim_metal["g-r"] < 0.4)
    bins = [(14, 19), (19, 20), (20, 21), (21, 22)]
    parts = [f"r {lo}-{hi}: {called[star & (r >= lo) & (r < hi)].mean():.0%} of {int((star & (r >= lo) & (r < hi)).sum())}"
             for lo, hi in bins]
    bright = star & (r < 21)
    return (f"Real images: on the real SDSS field {SDSS_FIELD} (64 px stamps from `skysort cutout`, centre-cropped to 20 px; "
            "b = 56 deg, where quasars are of order 1% of the point sources at r < 21) the model calls "
            f"{called[bright].mean():.0%} of the {int(bright.sum())} SDSS photometric stars with r < 21 (6\" aperture) stars "
            f"({'; '.join(parts)}), so {1 - called[bright].mean():.0%} of real stars are taken for quasars, against an overall "
            f"error of {errors[(19.0, 20.0)]:.0%} (r 19-20) and {errors[(20.0, 21.0)]:.0%} (r 20-21) on the simulated test. "
            "These stars' classes are photometric, "
            f"not spectroscopic; the field has no quasar labels. Where the errors are: of the {int(blue_real.sum())} real stars "
            f"with g - r 0.2-0.4 (halo turn-off stars), {1 - called[blue_real].mean():.0%} are called quasars; their median "
            f"u - g (4\" apertures) is {np.nanmedian(real['u-g'][blue_real]):.2f}, against {np.nanmedian(sim['u-g'][blue_sim]):.2f} "
            "for the simulated stars of the same g - r and r < 21 in the test set without the metallicity model (the Pickles "
            "templates lack the ultraviolet excess of metal-poor halo stars; with the training set's metallicity model it is "
            f"{np.nanmedian(sim_metal['u-g'][blue_metal]):.2f}). "
            f"With that field's point-source mix as a prior (`--prior star={FIELD_POINT_SOURCE_PRIOR['star']},"
            f"qso={FIELD_POINT_SOURCE_PRIOR['qso']}`) it calls {int((np.asarray(with_prior['class']) == 'star')[bright].sum())} "
            f"of the {int(bright.sum())} stars, at a cost in quasar completeness that this field cannot show (it has no "
            "quasar labels); "
            f"`--prior auto` estimates star {estimated.meta['prior']['star']:.2f}, qso "
            f"{estimated.meta['prior']['qso']:.2f} from all of the field's objects (its galaxies, which this model was not made "
            f"for, count too) and calls {int((np.asarray(estimated['class']) == 'star')[bright].sum())}.")


def sgq_sdss(run: Runner, steps: set[str], out: Path) -> None:
    from skysort.simulate.presets import shared_data_dir
    from skysort.tasks.sgq import evaluate_sgq_specphot, magnitude_table, specphot_table, write_model_card

    folder = run.data / "sgq"
    evaluations = folder / "eval"
    shared = shared_data_dir()
    field = folder / f"sdss_{SDSS_FIELD}.h5"
    if "simulate" in steps:
        run.simulate(folder, SDSS_TESTS)
        cut_sdss_field(run, field)
    if "evaluate" in steps:
        for test, evaluation in SDSS_EVALUATIONS.values():
            run.evaluate("sgq-sdss", folder / f"{test}.h5", evaluations / evaluation)
        specphot = evaluations / "specphot"
        if not run.done(specphot / "summary.json"):
            paths = [shared / "catalogs" / "sdss_dr17_specphot" / name for name in SDSS_SPECPHOT_FILES]
            print(f"  evaluate_sgq_specphot('sgq-sdss', {[p.name for p in paths]}, {specphot}, seed=0)", flush=True)
            if not run.dry_run:
                evaluate_sgq_specphot("sgq-sdss", paths, specphot, seed=0, command=(
                    f"evaluate_sgq_specphot('sgq-sdss', {list(SDSS_SPECPHOT_FILES)}, 'eval/specphot', seed=0)"))
    if "card" in steps:
        summary = json.loads((evaluations / "specphot" / "summary.json").read_text())
        field_metrics = json.loads((evaluations / "sdss_field" / "metrics.json").read_text())
        truth = dict(zip(field_metrics["confusion_matrix"]["labels"], map(sum, field_metrics["confusion_matrix"]["matrix"])))
        plural = {"star": "stars", "galaxy": "galaxies", "qso": "quasars"}
        truth_text = ", ".join(f"{count} {plural[name]}" for name, count in truth.items() if count)
        pct = lambda x: f"{100 * x:.2f}%"  # noqa: E731 - the card's percentage format
        sections = {
            "Real data (a): photometry branch on SDSS DR17 spectroscopic classes": [
                f"{summary['n_unique']:,} unique objects of `sdss_dr17_specphot/` (both files, matched by position; classes "
                f"{summary['class_counts']}), ugriz magnitudes only, read with the `sdss-specphot` preset; the photometry branch "
                "alone (no images).", "",
                *specphot_table(evaluations / "specphot" / "summary.json"), *SDSS_SPECPHOT_AFTER],
            f"Real data (b): real SDSS field {SDSS_FIELD}": [
                f"{field_metrics['n']} objects ({SDSS_FIELD_TRUTH}: {truth_text}), 64 px ugriz stamps cut with `skysort cutout` "
                "(centre-cropped to the model's input). The field's catalogue has no magnitudes, so every object is classified "
                f"from its images alone (inputs used: {field_metrics['inputs_used']}); star and qso predictions count as point sources.", "",
                f"- agreement with the {SDSS_FIELD_TRUTH}, all objects: {pct(field_metrics['point_extended_agreement'])}",
                f"- r < 21 ({field_metrics['bright']['n']} objects; r from a 6\" aperture on the r stamp): "
                f"{pct(field_metrics['bright']['point_extended_agreement'])}", "",
                *magnitude_table(evaluations / "sdss_field" / "metrics.json", quantity="point_extended_agreement",
                                 header="r (6\" aperture)", quantity_header="point/extended agreement"), "",
                *SDSS_FIELD_CODE],
            "Reproduce": SDSS_REPRODUCE,
        }
        rows = {label: evaluations / evaluation / "metrics.json" for label, (_, evaluation) in SDSS_EVALUATIONS.items()}
        rows[SDSS_SPECPHOT_LABEL] = evaluations / "specphot" / "all" / "metrics.json"
        print("  card", write_model_card("sgq-sdss", rows, out / "sgq-sdss.md", title=SDSS_TITLE, sections=sections, notes=SDSS_NOTES))


def galaxy_spectra_note(model: str) -> str:
    """What the spectral encoder makes of real galaxy spectra, which are outside its classes."""
    from skysort.simulate.presets import shared_data_dir
    from skysort.tasks.pointsource import classify_real_spectra

    table = classify_real_spectra(model, [shared_data_dir() / name for name in POINTSOURCE_GALAXY_SPECTRA])
    calls = "; ".join(f"{Path(f).stem} {c} (p_qso {p:.3f})" for f, c, p in zip(table["file"], table["class"], table["p_qso"]))
    return ("Classes are star and qso only: galaxies are out of scope, and the encoder gives a galaxy spectrum one of the two "
            f"(the real SDSS galaxies: {calls}; the retrain trial above called the emission-line galaxy -0107 a quasar).")


def pointsource_sdss(run: Runner, steps: set[str], out: Path) -> None:
    from skysort.simulate.presets import shared_data_dir
    from skysort.tasks.pointsource import classify_real_spectra, write_model_card

    folder = run.data / "pointsource"
    field = folder / f"sdss_{SDSS_FIELD}.h5"
    if "simulate" in steps:
        run.simulate(folder, POINTSOURCE_TESTS)
        cut_sdss_field(run, field)
    if "evaluate" in steps:
        run.evaluate("pointsource-sdss", folder / "test.h5", folder / "eval_test")
        run.evaluate("pointsource-sdss", folder / "test_metal.h5", folder / "eval_test_metal")
    if "card" in steps:
        rows = []
        for pattern, truth in POINTSOURCE_SPECTRA:
            classes = classify_real_spectra("pointsource-sdss", sorted(shared_data_dir().glob(pattern)))
            rows += [{"file": Path(f).name, "truth": truth, "class": c, "p_qso": p}
                     for f, c, p in zip(classes["file"], classes["class"], classes["p_qso"])]
        print(f"  real spectra: {sum(r['truth'] == r['class'] for r in rows)} of {len(rows)} correct")
        print("  card", write_model_card("pointsource-sdss", folder / "eval_test" / "metrics.json", out / "pointsource-sdss.md",
                                         test_description=POINTSOURCE_DESCRIPTION, real_spectra=rows,
                                         notes=[metal_test_note(folder / "eval_test_metal" / "metrics.json"), *POINTSOURCE_NOTES,
                                                galaxy_spectra_note("pointsource-sdss"),
                                                real_field_star_note("pointsource-sdss", field, folder / "test.h5", folder / "test_metal.h5",
                                                                     folder / "eval_test" / "metrics.json")]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of the test sets, models and evaluations")
    parser.add_argument("--out", type=Path, help="folder of the cards (default: DATA/cards)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--n", type=int, help="smoke run: objects per simulated set (figures meaningless)")
    parser.add_argument("--workers", type=int, default=1, help="skysort simulate --workers (output does not depend on it)")
    parser.add_argument("--force", action="store_true", help="redo steps whose output exists")
    parser.add_argument("--dry-run", action="store_true", help="print the commands of the simulate, train and evaluate steps only")
    args = parser.parse_args()
    # The recorded commands name repository files (benchmarks/presets/...) relative to its root.
    args.data = args.data.resolve()
    args.out = args.out.resolve() if args.out else None
    os.chdir(Path(__file__).resolve().parents[1])
    out = args.out or args.data / "cards"
    out.mkdir(parents=True, exist_ok=True)
    run = Runner(args.data, args.n, args.workers, args.force, args.dry_run)
    steps = set(args.steps) - ({"card"} if args.dry_run else set())
    for name in args.models:
        print(f"{name}:", flush=True)
        {"blend-cfis": blend_cfis, "sgq-kids": sgq_kids, "sgq-sdss": sgq_sdss, "pointsource-sdss": pointsource_sdss}[name](run, steps, out)


if __name__ == "__main__":
    main()
